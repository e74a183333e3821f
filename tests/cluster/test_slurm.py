"""Sweeps on a real (one-node) Slurm through the shipped launcher presets: `make test-cluster`.

Each test runs the real `xai` executable as a user on a login node would; the jobs run under slurmd.
"""

from __future__ import annotations

import csv
import re
import subprocess
import time
from pathlib import Path

from tests.cluster.slurm import PARTITION, LocalSlurm, free_port
from tests.conftest import FAST, load_json, run_xai, xai_command, xai_env

# the CPU preset as a user sets it for this cluster: one CPU and 2 GB per job, so two jobs run at once
LAUNCHER = ["hydra/launcher=slurm_cpu", f"hydra.launcher.partition={PARTITION}", "hydra.launcher.cpus_per_task=1",
            "hydra.launcher.mem_gb=2"]


def _sweep_dir(root: Path) -> Path:
    sweeps = [p for p in (root / "outputs" / "multirun").glob("*/*") if p.is_dir()]
    assert len(sweeps) == 1, sweeps
    return sweeps[0]


def _summary(sweep: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((sweep / "summary.csv").open()))


def _stored_entries(root: Path) -> list[Path]:
    return [p for p in (root / "models").iterdir() if p.is_dir()]


def test_a_four_job_sweep_runs_as_one_slurm_array(slurm: LocalSlurm, tmp_path: Path) -> None:
    start = time.perf_counter()
    result = run_xai("train", "-m", "seed=1,2,3,4", "classifiers=[logreg]", *LAUNCHER, root=tmp_path, env=slurm.env)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    sweep = _sweep_dir(tmp_path)
    rows = _summary(sweep)
    assert [r["seed"] for r in rows] == ["1", "2", "3", "4"] and all(r["status"] == "ok" for r in rows)
    # one array of four tasks: submitit's folders are named <array id>_<task>
    tasks = sorted(p.name for p in (sweep / ".submitit").iterdir() if p.is_dir() and "_" in p.name)
    assert len(tasks) == 4 and len({t.split("_")[0] for t in tasks}) == 1, tasks
    assert "submitted 4 slurm jobs" in result.stdout
    for job, task in enumerate(tasks):  # each job knows itself by its Slurm id
        assert f"id: '{task}'" in (sweep / str(job) / ".hydra" / "hydra.yaml").read_text()
    print(f"\n4-job sweep through slurm_cpu: {elapsed:.1f} s")


def test_two_jobs_that_need_the_same_model_train_it_once(slurm: LocalSlurm, tmp_path: Path) -> None:
    result = run_xai("train", "-m", "train.splits=[test],[val,test]", "classifiers=[small_cnn]", *FAST, *LAUNCHER,
                     root=tmp_path, env=slurm.env)
    assert result.returncode == 0, result.stderr
    sweep = _sweep_dir(tmp_path)
    jobs = [load_json(sweep / str(i) / "metrics.json")["models"]["small_cnn"] for i in (0, 1)]
    assert sorted(j["from_store"] for j in jobs) == [False, True]
    assert jobs[0]["accuracy"]["test"] == jobs[1]["accuracy"]["test"]
    assert len(_stored_entries(tmp_path)) == 1


def test_ddp_on_two_cpu_processes_inside_a_slurm_job(slurm: LocalSlurm, tmp_path: Path) -> None:
    """ddp_spawn's two workers inside one Slurm task take their ranks from the spawn (with Slurm's
    environment they would both be rank 0 and collide on one port), and the entry records what they ran."""
    epochs = ["trainer.max_epochs=2", "classifiers=[small_cnn]", "trainer.precision=32-true"]
    ddp = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]
    result = run_xai("train", "-m", *ddp, *epochs, *LAUNCHER, "hydra.launcher.cpus_per_task=2",
                     root=tmp_path, env=slurm.env)
    assert result.returncode == 0, result.stderr
    sweep = _sweep_dir(tmp_path)
    metrics = load_json(sweep / "0" / "metrics.json")["models"]["small_cnn"]
    [entry] = _stored_entries(tmp_path)
    fit = load_json(entry / "meta.json")["fit"]
    assert fit["world_size"] == 2 and fit["epochs"] == 2 and fit["steps"] > 0
    assert "epoch 2/2" in (sweep / "0" / "train.log").read_text()  # the workers' epoch lines reach the job's log
    assert metrics["accuracy"]["test"] > 0.5  # chance is 0.1

    single = run_xai("train", *epochs, "trainer=cpu", root=tmp_path, env=slurm.env)
    assert single.returncode == 0, single.stderr
    [run] = [p for p in (tmp_path / "outputs" / "train").iterdir() if p.is_dir()]
    alone = load_json(run / "metrics.json")["models"]["small_cnn"]
    assert alone["from_store"] is False  # a single-process model is another store entry
    print(f"\nsmall_cnn, 2 epochs on digits: test accuracy {metrics['accuracy']['test']:.4f} with DDP on 2 CPU "
          f"processes in a Slurm job, {alone['accuracy']['test']:.4f} in one process")


def _start_sweep(slurm: LocalSlurm, root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*xai_command(), "train", "-m", *args], cwd=root, env=xai_env(root, slurm.env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


def _wait_until_running(slurm: LocalSlurm, task: str, timeout_s: float = 120) -> str:
    """The Slurm id (`<array>_<task>`) of the sweep's task once it runs."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in slurm.squeue().splitlines():
            job_id, state = line.split()
            if job_id.endswith(f"_{task}") and state == "RUNNING":
                return job_id
        time.sleep(1)
    raise AssertionError(f"task {task} never ran: {slurm.squeue()}")


def test_a_cancelled_job_is_listed_and_the_others_finish(slurm: LocalSlurm, tmp_path: Path) -> None:
    """`scancel` on one job of a running sweep: the command waits for the others, writes the summary with the
    cancelled job in it, and exits 1."""
    sweep_cmd = _start_sweep(slurm, tmp_path, "trainer.max_epochs=1,500", "classifiers=[small_cnn]", *LAUNCHER)
    try:
        job_id = _wait_until_running(slurm, "1")
        time.sleep(5)  # let it start writing its run directory
        subprocess.run(["scancel", job_id], env=slurm.env, check=True)
        stdout, stderr = sweep_cmd.communicate(timeout=300)
    finally:
        sweep_cmd.kill()
    assert sweep_cmd.returncode == 1, stderr
    assert "1 of 2 jobs failed" in stderr and "Traceback" not in stderr
    rows = {r["job"]: r for r in _summary(_sweep_dir(tmp_path))}
    assert rows["0"]["status"] == "ok"
    assert rows["1"]["status"] == f"cancelled (scheduler job {job_id})"
    assert "cancelled" in stdout  # the terminal's table too


def test_a_job_past_its_time_limit_is_requeued_then_listed_as_timed_out(slurm: LocalSlurm, tmp_path: Path) -> None:
    """The preset's warning signal (SIGUSR2 signal_delay_s before the limit; here at once, the limit being
    shorter) requeues the job once (max_num_timeout=1); when it comes again the job stops and says why.
    Slurm holds a requeued job for two minutes before it runs again: the slowest test of the stage."""
    result = run_xai("train", "-m", "trainer.max_epochs=500", "classifiers=[small_cnn]", *LAUNCHER,
                     "hydra.launcher.timeout_min=1", "hydra.launcher.max_num_timeout=1",
                     root=tmp_path, env=slurm.env, timeout=480)
    assert result.returncode == 1, result.stderr
    sweep = _sweep_dir(tmp_path)
    [row] = _summary(sweep)
    # said by the job itself, or (the signal came before the job's task began) by the launcher
    assert row["status"].startswith(("timed out: the job neared hydra.launcher.timeout_min and was not requeued "
                                     "(timed-out too many times)", "timed out (scheduler job ")), row
    assert "timed out" in result.stdout  # the terminal's table too
    [log] = sweep.glob(".submitit/*/*_log.out")
    assert "Requeued job" in log.read_text()
    [job_id] = [d.name for d in (sweep / ".submitit").iterdir() if d.is_dir() and d.name.isdigit()]
    assert "Restarts=1" in subprocess.run(["scontrol", "show", "job", job_id], env=slurm.env, capture_output=True,
                                          text=True).stdout


def test_a_sweep_the_scheduler_refuses_fails_in_one_line(slurm: LocalSlurm, tmp_path: Path) -> None:
    """sbatch cannot reach the controller (a wrong SLURM_CONF): one line, exit 1, no job."""
    conf = tmp_path / "elsewhere.conf"
    conf.write_text(re.sub(r"SlurmctldPort=\d+", f"SlurmctldPort={free_port()}", slurm.conf.read_text()))
    result = run_xai("train", "-m", "seed=1,2", "classifiers=[logreg]", *LAUNCHER, root=tmp_path,
                     env={**slurm.env, "SLURM_CONF": str(conf)}, timeout=300)
    assert result.returncode == 1
    assert "the sweep stopped before any job started: FailedJobError: sbatch: error:" in result.stderr
    # sbatch's own line, then ours
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 2
    assert "Sweep summary" not in result.stdout
