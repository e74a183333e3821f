"""The CLI end to end, through the real `xai` executable, as a user runs it."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

import xai_cli as xai
from tests.conftest import FAST, load_json, only_run_dir, run_xai, xai_command, xai_env

pytestmark = pytest.mark.slow


def test_help_lists_the_working_commands(tmp_path: Path) -> None:
    result = run_xai("--help", root=tmp_path)
    assert result.returncode == 0
    assert "train" in result.stdout and "report" in result.stdout
    for available in ("explain", "discrepancy", "consistency", "counterfactual", "uncertainty"):
        assert available in result.stdout


def test_train_end_to_end_writes_a_complete_run(tmp_path: Path) -> None:
    result = run_xai("train", *FAST, root=tmp_path)
    assert result.returncode == 0, result.stderr
    run = only_run_dir(tmp_path)
    for name in ("config.yaml", "metrics.json", "report.md", "report.html", "train.log",
                 "figures/confusion_cnn.png", "figures/confusion_svm_rbf.png", "figures/disagreement.png"):
        assert (run / name).is_file(), name
    metrics = load_json(run / "metrics.json")
    assert metrics["command"] == "train" and metrics["dataset"]["name"] == "digits"
    assert set(metrics["models"]) == {"cnn", "svm_rbf"}
    for model in metrics["models"].values():
        assert set(model["accuracy"]) == {"train", "val", "test"}
        assert all(0.0 <= a <= 1.0 for a in model["accuracy"].values())
        assert model["params"] > 0 and model["train_time_s"] > 0
    assert metrics["models"]["cnn"]["params"] == 1_199_882
    assert set(metrics["disagreement"]) == {"cnn|svm_rbf"}
    html = (run / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3  # self-contained: every figure embedded
    assert "${" not in (run / "config.yaml").read_text()  # resolved
    # no logger chosen (the default): no tracker wrote anything anywhere
    assert not [p for p in ("tensorboard", "mlflow.db", "mlartifacts", "wandb") if (tmp_path / "outputs" / p).exists()]
    assert not (run / "csv").exists() and not (tmp_path / "mlruns").exists()
    # models landed in the store; the Python API, same settings, finds the same entries, the same numbers
    assert len([p for p in (tmp_path / "models").iterdir() if p.is_dir()]) == 2
    again = xai.train(["cnn", "svm_rbf"], "digits", model_dir=tmp_path / "models",
                      trainer={"max_epochs": 1, "limit_train_batches": 3, "limit_val_batches": 1})
    assert all(m["source"] == "store" for m in again.metrics["models"].values())
    cli = metrics
    api = json.loads(json.dumps(again.metrics, default=str))
    for name, model in api["models"].items():
        assert model["store_entry"] == cli["models"][name]["store_entry"]
        assert model["accuracy"] == cli["models"][name]["accuracy"] and model["params"] == cli["models"][name]["params"]
    assert api["disagreement"] == cli["disagreement"]
    # and hands back the classifiers themselves, ready for the other analyses
    explained = xai.explain({"cnn": again.models["cnn"]}, "digits", explainers=["saliency"], n_images=2,
                            model_dir=tmp_path / "models", stability={"n_images": 2, "n_samples": 1},
                            randomization={"n_images": 2})
    assert explained.metrics["models"]["cnn"]["accuracy"]["test"] == cli["models"]["cnn"]["accuracy"]["test"]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["dataset=nope"], "unknown dataset 'nope'; valid: digits"),
        (["classifier=nope"], "unknown option 'classifier'"),
        (["classifiers=[cnn,nope]"], "unknown classifiers 'nope'"),
        (["seed=abc"], "seed expects an integer, got 'abc'"),
        (["trainer.max_epoch=1"], "unknown option 'trainer.max_epoch'"),
        (["dataset=npz"], "dataset.file must be set"),
        (["analysis.splits=[test]"], "analysis.splits is now train.splits"),
        (["--bogus"], "unknown flag --bogus: xai train takes -m/--multirun"),
    ],
)
def test_bad_input_is_one_line_and_leaves_no_run(tmp_path: Path, args: list[str], expected: str) -> None:
    result = run_xai("train", *args, root=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr
    assert not (tmp_path / "outputs").exists()


def test_missing_dataset_says_where_to_put_it_and_no_run_looks_finished(tmp_path: Path) -> None:
    empty = tmp_path / "nothing_here"
    empty.mkdir()
    result = run_xai("train", "dataset=mnist", f"paths.data_dir={empty}", "dataset.download=false", root=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1
    assert "train-images-idx3-ubyte.gz" in error_lines[0] and str(empty / "MNIST" / "raw") in error_lines[0]
    run = only_run_dir(tmp_path)
    assert (run / "error.txt").is_file() and not (run / "metrics.json").exists() and not (run / "report.html").exists()


def test_explicit_run_dir_is_used_and_never_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "my_run"
    first = run_xai("train", *FAST, "classifiers=[svm_rbf]", f"hydra.run.dir={target}", root=tmp_path)
    assert first.returncode == 0, first.stderr
    assert (target / "metrics.json").is_file()
    before = (target / "metrics.json").read_bytes()
    second = run_xai("train", *FAST, "classifiers=[svm_rbf]", f"hydra.run.dir={target}", root=tmp_path)
    assert second.returncode == 2 and "never overwritten" in second.stderr
    assert (target / "metrics.json").read_bytes() == before


def _sweep_dir(root: Path) -> Path:
    sweeps = list((root / "outputs" / "multirun" / "train").iterdir())
    assert len(sweeps) == 1
    return sweeps[0]


def test_multirun_basic_launcher_writes_one_summary(tmp_path: Path) -> None:
    result = run_xai("train", "-m", "seed=1,2", "classifiers=[small_cnn]", *FAST, root=tmp_path)
    assert result.returncode == 0, result.stderr
    sweep = _sweep_dir(tmp_path)
    assert (sweep / "0" / "metrics.json").is_file() and (sweep / "1" / "metrics.json").is_file()
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [r["seed"] for r in rows] == ["1", "2"] and all(r["status"] == "ok" for r in rows)
    assert rows[0]["models.small_cnn.accuracy.test"] != rows[1]["models.small_cnn.accuracy.test"]
    assert (sweep / "summary.html").is_file()
    assert "Sweep summary (2 jobs, 0 failed" in result.stdout
    assert "#0] " in result.stderr and "#1] " in result.stderr  # each job's log lines carry its number

    # `xai report` re-renders one job's run and the sweep's summary
    job = sweep / "0"
    original = (job / "report.md").read_text()
    (job / "report.md").unlink()
    (job / "report.html").unlink()
    (sweep / "summary.md").unlink()
    for target in (job, sweep):
        rerendered = run_xai("report", str(target), root=tmp_path)
        assert rerendered.returncode == 0, rerendered.stderr
    assert (job / "report.md").read_text() == original and (job / "report.html").is_file()
    assert (sweep / "summary.md").is_file()


def test_multirun_joblib_jobs_share_one_stored_model(tmp_path: Path) -> None:
    """Two parallel jobs that need the same model: one trains it under the lock, the other loads it."""
    result = run_xai("train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "train.splits=[test],[val,test]",
                     "classifiers=[small_cnn]", *FAST, root=tmp_path)
    assert result.returncode == 0, result.stderr
    sweep = _sweep_dir(tmp_path)
    jobs = [load_json(sweep / str(i) / "metrics.json")["models"]["small_cnn"] for i in (0, 1)]
    assert sorted(j["from_store"] for j in jobs) == [False, True]
    assert jobs[0]["accuracy"]["test"] == jobs[1]["accuracy"]["test"]
    entries = list((tmp_path / "models").iterdir())
    assert len([p for p in entries if p.is_dir()]) == 1 and not any(p.name.startswith(".tmp") for p in entries)


def test_a_failing_job_is_reported_and_the_sweep_goes_on(tmp_path: Path) -> None:
    result = run_xai("train", "-m", "dataset.test_size=0.2,1.5", "classifiers=[svm_rbf]", *FAST, root=tmp_path)
    assert result.returncode == 1
    assert "1 of 2 jobs failed" in result.stderr and "Traceback" not in result.stderr
    sweep = _sweep_dir(tmp_path)
    summary = json.loads((sweep / "summary.json").read_text())
    assert summary[0]["status"] == "ok" and summary[1]["status"].startswith("failed: ")
    assert (sweep / "1" / "error.txt").is_file() and not (sweep / "1" / "metrics.json").exists()


def test_a_killed_job_is_listed_and_the_sweep_waits_for_the_others(tmp_path: Path) -> None:
    """The local_jobs preset (submitit's machinery on this machine): `kill -9` on one job's process, as the
    OOM killer would. The launcher waits for the other job, the summary lists the killed one, exit 1."""
    import signal
    import time

    command = [*xai_command(), "train", "-m", "hydra/launcher=local_jobs", "trainer.max_epochs=1,500",
               "classifiers=[small_cnn]", "trainer.limit_val_batches=1"]
    sweep_cmd = subprocess.Popen(command, cwd=tmp_path, env=xai_env(tmp_path), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        hydra_yaml = None
        deadline = time.monotonic() + 180
        while hydra_yaml is None and time.monotonic() < deadline:  # job 1 has started its run
            found = list((tmp_path / "outputs" / "multirun" / "train").glob("*/1/.hydra/hydra.yaml"))
            hydra_yaml = found[0] if found and "id: '" in found[0].read_text() else None
            time.sleep(0.5)
        assert hydra_yaml is not None, "job 1 never started"
        pid = int(re.search(r"id: '(\d+)'", hydra_yaml.read_text()).group(1))  # a local job's id is its PID
        os.kill(pid, signal.SIGKILL)
        stdout, stderr = sweep_cmd.communicate(timeout=300)
    finally:
        sweep_cmd.kill()
    assert sweep_cmd.returncode == 1, stderr
    assert "1 of 2 jobs failed" in stderr and "Traceback" not in stderr
    summary = json.loads((_sweep_dir(tmp_path) / "summary.json").read_text())
    assert [j["status"] for j in summary] == ["ok", f"killed (scheduler job {pid})"]


def test_ctrl_c_during_training_is_one_line_exit_130_and_leaves_nothing_half_written(tmp_path: Path) -> None:
    import signal
    import time

    command = [*xai_command(), "train", "classifiers=[small_cnn]", "trainer.max_epochs=200"]
    run = subprocess.Popen(command, cwd=tmp_path, env=xai_env(tmp_path), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        deadline, log = time.monotonic() + 120, tmp_path / "outputs" / "train"
        while time.monotonic() < deadline and "epoch 1/" not in "".join(p.read_text() for p in log.glob("*/train.log")):
            time.sleep(0.2)  # until the first epoch has ended: mid-training
        run.send_signal(signal.SIGINT)
        _, stderr = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 130 and stderr.strip().splitlines()[-1] == "error: interrupted", stderr
    assert "Traceback" not in stderr
    job = only_run_dir(tmp_path)
    assert not (job / "metrics.json").exists() and not (job / "report.html").exists()  # not a finished run
    assert [p.name for p in (tmp_path / "models").iterdir() if not p.name.endswith(".lock")] == []  # no half entry


@pytest.mark.parametrize("launcher, extra", [("submitit_local", []),
                                             ("submitit_slurm", ["hydra.launcher.partition=gpu", "trainer=gpu",
                                                                 "dataset=mnist"])])
def test_submitit_launchers_compose(tmp_path: Path, launcher: str, extra: list[str]) -> None:
    result = run_xai("train", f"hydra/launcher={launcher}", *extra, "--cfg", "hydra", root=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "hydra_plugins.hydra_submitit_launcher.submitit_launcher" in result.stdout
    if launcher == "submitit_slurm":
        assert "partition: gpu" in result.stdout


def test_cfg_job_prints_the_composed_config(tmp_path: Path) -> None:
    result = run_xai("train", "dataset=mnist", "classifiers=[lenet,svm_rbf]", "--cfg", "job", root=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "MNISTDataModule" in result.stdout and "lenet:" in result.stdout and "svm_rbf:" in result.stdout
    assert not (tmp_path / "outputs").exists()


def test_report_of_a_missing_directory_is_one_line(tmp_path: Path) -> None:
    missing = run_xai("report", str(tmp_path / "nope"), root=tmp_path)
    assert missing.returncode == 2 and missing.stderr.startswith("error: no such directory")
