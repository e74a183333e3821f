"""The lightning-hydra-template's other groups: callbacks, debug, hparams_search (Optuna), and --cfg job."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import FAST, compose_config, load_json, only_run_dir, run_xai
from xai_cli.analysis.context import trainer_config
from xai_cli.app import metric_value
from xai_cli.errors import UserError
from xai_cli.training.trainer import CloseProcessGroup, EpochLines, FitRecord, build_trainer

def _fits(root: Path, name: str) -> dict[str, dict]:
    """Store entries of model `name`: key -> what the fit recorded (epochs, steps)."""
    return {p.name: json.loads((p / "meta.json").read_text())["fit"] for p in (root / "models").glob(f"{name}-*")}


@pytest.mark.slow
def test_early_stopping_stops_enters_the_store_key_and_a_checkpoint_is_kept(tmp_path: Path) -> None:
    # min_delta 1.0: no epoch after the first counts as better, so patience 0 stops after the second
    args = ["classifiers=[small_cnn]", "trainer.max_epochs=6", "trainer.limit_train_batches=3",
            "trainer.limit_val_batches=1"]
    stopped = run_xai("train", *args, "callbacks=[default,early_stopping,model_checkpoint]",
                      "callbacks.early_stopping.patience=0", "callbacks.early_stopping.min_delta=1.0", root=tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    assert "small_cnn epoch 2/6" in stopped.stderr and "epoch 3/6" not in stopped.stderr
    (fit,) = _fits(tmp_path, "small_cnn").values()
    assert fit["epochs"] == 2
    (checkpoint,) = (only_run_dir(tmp_path) / "checkpoints" / "small_cnn").glob("*.ckpt")
    assert re.fullmatch(r"epoch0[01]-val_acc\d\.\d{4}\.ckpt", checkpoint.name)

    # without early stopping the same settings are another model: trained, not taken from the store
    full = run_xai("train", *args, root=tmp_path)
    assert full.returncode == 0, full.stderr
    assert sorted(f["epochs"] for f in _fits(tmp_path, "small_cnn").values()) == [2, 6]


def test_without_callbacks_a_fit_has_only_its_own_bookkeeping() -> None:
    trainer_cfg = trainer_config(compose_config("train", [*FAST, "callbacks=none"]))
    trainer = build_trainer(trainer_cfg, 1, "quiet")
    assert {type(c) for c in trainer.callbacks} == {FitRecord, CloseProcessGroup}
    default = build_trainer(trainer_config(compose_config("train", FAST)), 1, "bar")
    assert EpochLines in {type(c) for c in default.callbacks}  # progress is the default choice (no terminal here)


@pytest.mark.slow
def test_debug_runs_go_to_their_own_folder_and_never_serve_real_runs(tmp_path: Path) -> None:
    fdr = run_xai("train", "classifiers=[small_cnn]", "debug=fdr", root=tmp_path)
    assert fdr.returncode == 0, fdr.stderr
    assert (tmp_path / "outputs" / "debug" / "train").is_dir() and not (tmp_path / "outputs" / "train").exists()
    (fit,) = _fits(tmp_path, "small_cnn").values()
    assert fit["steps"] == 1  # fast_dev_run: one training batch

    overfit = run_xai("train", "classifiers=[small_cnn]", "debug=overfit", root=tmp_path)
    assert overfit.returncode == 0, overfit.stderr
    losses = [float(m) for m in re.findall(r"small_cnn epoch \d+/20  loss (\S+)", overfit.stderr)]
    assert len(losses) == 20 and losses[-1] < 0.2 < losses[0]  # three batches, learnt by heart
    assert sorted(f["steps"] for f in _fits(tmp_path, "small_cnn").values()) == [1, 60]  # two entries


@pytest.mark.slow
def test_an_optuna_sweep_returns_its_best_trial(tmp_path: Path) -> None:
    result = run_xai("train", "hparams_search=cnn_optuna", "hydra.sweeper.n_trials=3", *FAST, root=tmp_path)
    assert result.returncode == 0, result.stderr
    (sweep,) = (tmp_path / "outputs" / "multirun" / "train").iterdir()
    trials = {}
    for job in sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()):
        overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
        max_lr = float(next(o for o in overrides if o.startswith("classifiers.cnn.fit.scheduler.max_lr=")).split("=")[1])
        trials[max_lr] = load_json(job / "metrics.json")["models"]["cnn"]["accuracy"]["val"]
    assert len(trials) == 3 and all(3e-4 <= lr <= 3e-2 for lr in trials)
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == max(trials.values())
    assert trials[best["best_params"]["classifiers.cnn.fit.scheduler.max_lr"]] == best["best_value"]


def test_an_optimized_metric_is_read_from_the_metrics_or_refused_naming_some() -> None:
    metrics = {"models": {"logreg": {"accuracy": {"val": 0.9, "test": 0.8}}}, "schema_version": 3}
    assert metric_value(metrics, "models.logreg.accuracy.val") == 0.9
    with pytest.raises(UserError, match=r"^optimized_metric=models.logreg.accuracy.vall is not a number of this "
                                        r"run's metrics.json; e.g. models.logreg.accuracy.val, models.logreg"):
        metric_value(metrics, "models.logreg.accuracy.vall")


def test_the_config_tree_shows_each_group_as_a_branch_in_pipeline_order() -> None:
    from rich.console import Console

    from xai_cli.config_print import config_tree

    console = Console(record=True, width=100, color_system=None)
    console.print(config_tree(compose_config("train", ["logger=csv"])))
    text = console.export_text()
    branches = [line.split("── ")[1] for line in text.splitlines() if line.startswith(("├── ", "└── "))]
    assert branches[:6] == ["dataset", "classifiers", "trainer", "callbacks", "logger", "paths"]
    assert "_target_: lightning.pytorch.loggers.CSVLogger" in text and "│   └── cnn:" in text


@pytest.mark.parametrize("args, shown", [(["--cfg", "job"], True), (["-c", "job", "seed=1"], True),
                                         (["--cfg", "hydra"], False), (["--cfg", "job", "-m"], False),
                                         (["--cfg", "job", "--package", "trainer"], False), ([], False)])
def test_only_a_whole_job_config_is_drawn_as_a_tree(args: list[str], shown: bool) -> None:
    from xai_cli.app import _prints_job_config

    assert _prints_job_config(args) is shown
