"""Experiment tracking (`logger=...`): what each tracker holds after real runs, and the refusals."""

from __future__ import annotations

import csv
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator, Mapping

import pytest
import yaml
from lightning.pytorch.loggers import Logger

import xai_cli as xai
from tests.conftest import FAST, load_json, only_run_dir, run_dirs, run_xai
from xai_cli.errors import UserError
from xai_cli.tracking import RunName, Tracking, check_trackers, metric_key, tracked_numbers


def _scalars(event_dir: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(event_dir))
    events.Reload()
    return {tag: [e.value for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@pytest.mark.slow
def test_csv_and_tensorboard_hold_the_training_curves_and_the_analysis_numbers(tmp_path: Path) -> None:
    result = run_xai("train", *FAST, "classifiers=[small_cnn,logreg]", "logger=[csv,tensorboard]", root=tmp_path)
    assert result.returncode == 0, result.stderr
    run = only_run_dir(tmp_path)
    test_accuracy = load_json(run / "metrics.json")["models"]["small_cnn"]["accuracy"]["test"]

    rows = list(csv.DictReader((run / "csv" / "metrics.csv").open()))
    curve = [float(r["small_cnn/val_acc"]) for r in rows if r.get("small_cnn/val_acc")]
    assert len(curve) == 1 and 0 <= curve[0] <= 1  # one epoch's validation accuracy, from the fit
    assert float(rows[-1]["models.small_cnn.accuracy.test"]) == pytest.approx(test_accuracy)
    params = yaml.safe_load((run / "csv" / "hparams.yaml").read_text())  # the resolved config, flattened
    assert params["seed"] == 0 and params["classifiers.small_cnn.fit.max_epochs"] >= 1

    (event_dir,) = (tmp_path / "outputs" / "tensorboard" / "train").iterdir()
    assert event_dir.name == run.name  # one folder per run, all under one root to compare
    scalars = _scalars(event_dir)
    assert len(scalars["small_cnn/val_acc"]) == 1 and "small_cnn/loss_epoch" in scalars
    assert scalars["models.small_cnn.accuracy.test"] == [pytest.approx(test_accuracy)]
    assert "disagreement.logreg-small_cnn" in scalars or "disagreement.small_cnn-logreg" in scalars


def test_an_unreachable_tracking_server_fails_in_one_line_before_training(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run_xai("train", "logger=mlflow", f"logger.mlflow.tracking_uri=http://127.0.0.1:{port}", root=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no tracking server answers there" in lines[0] and str(port) in lines[0]
    assert not run_dirs(tmp_path) and not (tmp_path / "models").exists()  # nothing ran, nothing trained


def test_a_missing_tracker_package_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import xai_cli.tracking as tracking

    monkeypatch.setattr(tracking, "_importable", lambda package: package != "mlflow")
    with pytest.raises(UserError, match=r"^logger=mlflow needs the mlflow package: pip install mlflow"):
        check_trackers(xai_cfg_logger("mlflow"))
    check_trackers(xai_cfg_logger("tensorboard"))  # installed: no complaint


def xai_cfg_logger(name: str) -> Any:
    from xai_cli.config import compose

    return compose("train", [f"logger={name}"]).logger


class _Broken(Logger):
    """A tracker that fails whatever it is asked to keep."""

    name, version = "broken", 0

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        raise ConnectionError("the tracker went away")

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass


class _Kept(_Broken):
    def __init__(self) -> None:
        super().__init__()
        self.kept: dict[str, float] = {}
        self.status = ""

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.kept.update(metrics)

    def finalize(self, status: str) -> None:
        self.status = status


def test_a_tracker_that_fails_after_the_run_is_named_and_the_others_go_on(tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    kept = _Kept()
    tracking = Tracking({"broken": _Broken(), "kept": kept}, RunName("train", tmp_path, tmp_path))
    with caplog.at_level(logging.WARNING, logger="xai"):
        tracking.finish({"seed": 0}, {"models": {"cnn": {"accuracy": {"test": 0.9}}}, "disagreement": {"a|b": 0.1},
                                      "seed": 0, "settings": {"n_images": 16}}, None)
    assert tracking.failed == ["broken"] and "logger broken failed (ConnectionError" in caplog.text
    # results only: the settings metrics.json echoes are the run's parameters already
    assert kept.kept == {"models.cnn.accuracy.test": 0.9, "disagreement.a-b": 0.1} and kept.status == "success"


def test_result_tables_are_tracked_row_by_row() -> None:
    metrics = {"table": [{"architecture": "mlp", "explainer": "integrated_gradients", "C": 0.19, "alpha": 9,
                          "C_by_perturbation": {"seed": 0.2, "dropout": None}},
                         {"architecture": "svm_rbf", "explainer": "kernel_shap", "C": 0.73, "alpha": 6}],
               "evaluation": {"pearson": 0.95, "per_point": [{"msp_in": 0.6, "msp_out_mean": 0.62}]},
               "indices": [3, 1, 4], "schema_version": 3}
    assert tracked_numbers(metrics) == {
        "table.mlp.integrated_gradients.C": 0.19, "table.mlp.integrated_gradients.alpha": 9,
        "table.mlp.integrated_gradients.C_by_perturbation.seed": 0.2, "table.svm_rbf.kernel_shap.C": 0.73,
        "table.svm_rbf.kernel_shap.alpha": 6, "evaluation.pearson": 0.95, "evaluation.per_point.0.msp_in": 0.6,
        "evaluation.per_point.0.msp_out_mean": 0.62, "schema_version": 3}


@pytest.mark.slow
def test_wandb_offline_keeps_the_numbers_and_the_run_directory(tmp_path: Path) -> None:
    """No account, no network: the offline run file (protobuf records, strings stored as they are) holds the
    metric and the artifact made of the run directory."""
    from xai_cli.config import compose

    run_dir = tmp_path / "outputs" / "train" / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "report.html").write_text("<html>report</html>")
    logger_cfg = compose("train", ["logger=wandb", f"paths.output_dir={tmp_path / 'outputs'}"]).logger
    tracking = Tracking.start(logger_cfg, RunName("train", run_dir, tmp_path / "outputs"))
    assert tracking is not None
    tracking.finish({"seed": 0}, {"models": {"cnn": {"accuracy": {"test": 0.9}}}}, run_dir)
    assert tracking.failed == []
    # The run file is closed by W&B's service process after `finish` returns; a command's exit waits for it
    # (W&B's atexit teardown), so the test waits the same way before reading it.
    import wandb

    wandb.teardown()
    (record,) = (tmp_path / "outputs" / "wandb").glob("offline-run-*/run-*.wandb")
    data = record.read_bytes()
    assert b"models.cnn.accuracy.test" in data and b"report.html" in data and b"xai-run" in data


def test_metric_keys_are_what_every_tracker_accepts() -> None:
    assert metric_key("disagreement.cnn|svm_rbf") == "disagreement.cnn-svm_rbf"
    assert metric_key("C_by_perturbation.seed") == "C_by_perturbation.seed"


# --- a real MLflow tracking server ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` on 127.0.0.1 on a free port, its store in a temp dir; stopped by its PID at the end."""
    root = tmp_path_factory.mktemp("mlflow_server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--backend-store-uri", f"sqlite:///{root}/store.db", "--artifacts-destination", str(root / "artifacts")]
    log_file = (root / "server.log").open("w")
    server = subprocess.Popen(command, cwd=root, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and the workers it started
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log_file.close()


def _runs(uri: str, experiment: str) -> list[Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, [e.name for e in client.search_experiments()]
    return client.search_runs([found.experiment_id])


@pytest.mark.slow
def test_train_and_explain_are_tracked_on_a_real_mlflow_server(tmp_path: Path, mlflow_server: str) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_server)
    tracker = ["logger=mlflow", f"logger.mlflow.tracking_uri={mlflow_server}"]
    trained = run_xai("train", *FAST, "classifiers=[small_cnn]", *tracker, root=tmp_path)
    assert trained.returncode == 0, trained.stderr
    (run,) = _runs(mlflow_server, "xai train")
    train_dir = only_run_dir(tmp_path)
    assert run.info.run_name == train_dir.name and run.info.status == "FINISHED"
    assert run.data.params["seed"] == "0" and run.data.params["classifiers.small_cnn.fit.max_epochs"]
    accuracy = load_json(train_dir / "metrics.json")["models"]["small_cnn"]["accuracy"]["test"]
    assert run.data.metrics["models.small_cnn.accuracy.test"] == pytest.approx(accuracy)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "small_cnn/val_acc")] == [2]  # the curve

    explained = run_xai("explain", *FAST, "classifiers=[small_cnn]", "explainers=[saliency]", "explain.n_images=4",
                        *tracker, root=tmp_path)
    assert explained.returncode == 0, explained.stderr
    (run,) = _runs(mlflow_server, "xai explain")
    explain_dir = only_run_dir(tmp_path, "explain")
    deletion = load_json(explain_dir / "metrics.json")["explainers"]["saliency"]["small_cnn"]["deletion_auc"]
    assert run.data.metrics["explainers.saliency.small_cnn.deletion_auc"] == pytest.approx(deletion)
    assert not any(k.startswith("small_cnn/") for k in run.data.metrics)  # taken from the store: nothing trained
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report.html", "metrics.json", "attributions.npz", "figures"} <= artifacts
    report = Path(client.download_artifacts(run.info.run_id, "report.html", str(tmp_path)))
    assert report.read_bytes() == (explain_dir / "report.html").read_bytes()

    # the same from Python: each analysis inside the context is one run, saved as a run directory too
    with xai.tracked("mlflow", tracking_uri=mlflow_server, output_dir=tmp_path / "api"):
        result = xai.explain(["small_cnn"], "digits", explainers=["saliency"], n_images=4,
                             model_dir=tmp_path / "models", trainer={"max_epochs": 1, "limit_train_batches": 3,
                                                                    "limit_val_batches": 1})
    runs = _runs(mlflow_server, "xai explain")
    api_run = next(r for r in runs if r.info.run_id != run.info.run_id)
    assert api_run.data.params["explainers"] == "['saliency']" and api_run.data.params["n_images"] == "4"
    assert api_run.data.metrics["explainers.saliency.small_cnn.deletion_auc"] == pytest.approx(
        result.metrics["explainers"]["saliency"]["small_cnn"]["deletion_auc"])
    assert "report.html" in {a.path for a in client.list_artifacts(api_run.info.run_id)}
    assert (tmp_path / "api" / "explain" / api_run.info.run_name / "report.html").is_file()


@pytest.mark.slow
def test_a_sweep_is_one_experiment_with_its_summary(tmp_path: Path) -> None:
    """The local store (SQLite under outputs/, nothing to start): each job a run named by what it varies."""
    result = run_xai("train", "-m", "seed=1,2", "classifiers=[logreg]", "logger=mlflow", root=tmp_path)
    assert result.returncode == 0, result.stderr
    uri = f"sqlite:///{tmp_path}/outputs/mlflow.db"
    sweep = next((tmp_path / "outputs" / "multirun" / "train").iterdir()).name
    runs = {r.info.run_name: r for r in _runs(uri, f"xai train sweep {sweep}")}
    assert set(runs) == {"0: seed=1", "1: seed=2", "summary"}
    assert runs["0: seed=1"].data.params["seed"] == "1" and runs["1: seed=2"].data.params["seed"] == "2"
    from mlflow.tracking import MlflowClient

    summary = {a.path for a in MlflowClient(uri).list_artifacts(runs["summary"].info.run_id)}
    assert summary == {"summary.md", "summary.html", "summary.csv", "summary.json"}
