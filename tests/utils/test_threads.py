"""Thread pools follow the CPUs a process may use: affinity mask, cgroup quota, Slurm's CPUs per task."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from xai_cli.utils.threads import usable_cpus

# A child process, as a job starts: it imports what an analysis imports, opens a RunContext (where every
# analysis, CLI or API, caps its pools) and prints the size of each pool.
CHILD = """
import json, torch, numpy, scipy.linalg, sklearn.svm
from threadpoolctl import threadpool_info
before = torch.get_num_threads()
from xai_cli.analysis.context import RunContext
RunContext(data=None, store=None, trainer=None)
print(json.dumps({"before": before, "torch": torch.get_num_threads(),
                  "pools": sorted({p["num_threads"] for p in threadpool_info()})}))
"""


def _pools(env: dict[str, str] | None = None, cpus: set[int] | None = None) -> dict:
    environment = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK")}
    result = subprocess.run([sys.executable, "-c", CHILD], env={**environment, **(env or {})}, text=True,
                            capture_output=True, check=True, timeout=120,
                            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    return json.loads(result.stdout.splitlines()[-1])


needs_two_cpus = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs to impose fewer")


@needs_two_cpus
def test_the_pools_follow_an_imposed_affinity_of_one_cpu() -> None:
    """The runtimes read the mask themselves ("before" is 1 already); this guards that nothing of ours raises
    a pool above it."""
    assert _pools(cpus={min(os.sched_getaffinity(0))}) == {"before": 1, "torch": 1, "pools": [1]}


@needs_two_cpus
def test_the_pools_follow_slurms_cpus_per_task() -> None:
    """Slurm may hand a job fewer CPUs than the mask shows (no task/affinity plugin): the runtimes would
    start one thread per core of the node."""
    pools = _pools(env={"SLURM_CPUS_PER_TASK": "1"})
    assert pools["before"] > 1 and pools["torch"] == 1 and pools["pools"] == [1]


@needs_two_cpus
def test_a_size_someone_chose_is_kept() -> None:
    """joblib gives each worker its share through OMP_NUM_THREADS; a user's own setting counts the same."""
    assert _pools(env={"OMP_NUM_THREADS": "1", "SLURM_CPUS_PER_TASK": "2"})["torch"] == 1


@pytest.mark.parametrize("files, expected", [
    ({"cpu.max": "150000 100000\n"}, 2),               # cgroup v2: 1.5 CPUs of quota round up
    ({"cpu.max": "max 100000\n"}, None),                # v2, no quota
    ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1),  # cgroup v1
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),   # v1, no quota
    ({}, None),
])
def test_a_cgroup_quota_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str],
                               expected: int | None) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    mask = len(os.sched_getaffinity(0))
    assert usable_cpus(tmp_path) == min(mask, expected or mask)


def test_the_cli_lets_waiting_threads_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    from xai_cli.utils.threads import prepare_environment

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    prepare_environment()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # a user's choice stays
    prepare_environment()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
