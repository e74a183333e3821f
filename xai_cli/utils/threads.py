"""Thread pools sized to the CPUs this process may use.

torch (OpenMP and MKL), numpy's and scipy's OpenBLAS and scikit-learn's OpenMP size their pools by the
affinity mask (`taskset`, Slurm's task binding), but not by a cgroup CPU quota (containers) nor by
`SLURM_CPUS_PER_TASK` without binding: there they start one thread per core of the node, and the threads'
barriers wait on each other across CPUs the process does not get. Nothing in torch or threadpoolctl reads
those limits (Python 3.13's `os.process_cpu_count` reads only the mask), hence `usable_cpus`. On a machine
other processes load, spinning waits are the larger cost: see `prepare_environment`.

Sizes are set on the pools themselves, never exported as OMP_NUM_THREADS: joblib gives each of its workers
a share of the CPUs through that variable unless the parent already set it, and sweeps run on joblib.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Any

from threadpoolctl import ThreadpoolController

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _affinity() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _cgroup_quota(root: Path = CGROUP_ROOT) -> int | None:
    """CPUs allowed by a CFS quota: cgroup v2's cpu.max ("200000 100000") or v1's cfs_quota_us/cfs_period_us."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 or period <= 0 else max(1, math.ceil(quota / period))
    except (OSError, ValueError):
        return None


def _positive_int(name: str) -> int | None:
    try:
        value = int(os.environ.get(name, ""))
    except ValueError:
        return None
    return value if value > 0 else None


def usable_cpus(cgroup_root: Path = CGROUP_ROOT) -> int:
    """The fewest of: the affinity mask, the cgroup quota, and Slurm's CPUs per task."""
    limits = [_affinity(), _cgroup_quota(cgroup_root), _positive_int("SLURM_CPUS_PER_TASK")]
    return max(1, min(limit for limit in limits if limit is not None))


def pool_size() -> int:
    """Threads per pool: OMP_NUM_THREADS when someone set it (the user, or joblib in its workers, which it
    gives a share of the CPUs each), else the usable CPUs."""
    return _positive_int("OMP_NUM_THREADS") or usable_cpus()


def prepare_environment() -> None:
    """Before torch or numpy is imported (the CLI's start): OpenMP threads that wait at a barrier sleep
    instead of spinning. Spinning buys microseconds on an idle machine and costs the CPU time another
    process needed on a busy one: `xai explain` on digits beside two torch processes took 6.7× its time
    alone with spinning threads, 2.9× with sleeping ones, and no longer alone (scripts/bench_contention.py).
    A value the user set is kept; child processes (sweep jobs) inherit it."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@functools.cache
def _controller() -> ThreadpoolController:
    # scans the loaded libraries once (0.6 ms a scan); numpy's, scipy's and scikit-learn's come with our imports
    return ThreadpoolController()


def cap_pools() -> int:
    """Cap torch's pool and every OpenMP/BLAS pool loaded (threadpoolctl) at `pool_size()`: they start with one
    thread per core of the node under a quota or an unbound Slurm allocation. Pools already
    smaller (a user's choice) are left alone. Returns the cap."""
    import torch

    size = pool_size()
    if torch.get_num_threads() > size:
        torch.set_num_threads(size)
    for pool in ThreadpoolController().lib_controllers:  # a fresh scan: libraries loaded since are included
        if pool.num_threads > size:
            pool.set_num_threads(size)
    return size


def one_blas_thread() -> Any:
    """The small regressions (1,000 × ~48) of KernelSHAP and LIME in numpy's OpenBLAS on one thread.

    Its worker threads keep spinning for a while after each call, on the same cores torch's next forward pass
    needs: with them, KernelSHAP took 0.21 s per MNIST image, without, 0.135 (2 cores)."""
    return _controller().limit(limits=1, user_api="blas")
