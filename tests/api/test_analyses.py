"""What the analyses do, checked in-process through the Python API (the CLI runs the same functions; its
subprocess tests in tests/test_cli*.py keep to the contract: exit codes, one-line errors, run directories,
sweeps, and the store shared between the two)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

import xai_cli as xai
from xai_cli.dig.coverage import distance_to_segments
from xai_cli.dig.pool import unanimous
from xai_cli.errors import UserError
from xai_cli.training.snapshots import snapshot_file

TRAINER = {"max_epochs": 1, "limit_train_batches": 3, "limit_val_batches": 1}
VAE = {"fit.max_epochs": 2, "fit.min_train_images": 0}
CF_BUDGET = {"wachter": {"search_rounds": 2, "steps": 15}, "latent_rl": {"fit": {"steps": 20, "batch_size": 32}}}


def test_input_space_dig_on_moons_finds_areas_only_where_the_models_differ(tmp_path: Path) -> None:
    moons = xai.datasets.load("moons")
    result = xai.discrepancy(["mlp", "svm_rbf"], moons, space="input", model_dir=tmp_path)
    m = result.metrics
    assert m["space"] == "input" and m["vae"] is None and m["n_areas"] > 0
    assert "figures/plane.png" in result.figures
    models = xai.train(["mlp", "svm_rbf"], moons, model_dir=tmp_path).models  # the same, from the store

    def disagree(points: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(points, dtype=torch.float32)
        return ~unanimous(np.stack([model.predict_proba(x).argmax(1) for model in models.values()]))

    a, traced = result.areas, result.traced
    assert m["tracing"]["n_areas"] == len(traced["t_start"]) > 0
    for found in (a, traced):  # the areas on counterfactual segments and those traced sideways from them
        middle = (found["z_start_in"] + found["z_end_in"]) / 2
        assert disagree(found["z_start_in"]).all() and disagree(found["z_end_in"]).all()
        assert disagree(middle).mean() > 0.95
    # and nowhere else on the searched segments: at the search's own grid, every disagreement lies in an
    # area; on a grid four times finer, only strips narrower than a grid step can have been missed, and
    # those lie beside the areas found (tracing follows the disagreement sideways)
    ends = moons.split("train").x.numpy()[a["segments"]]
    starts = np.concatenate([a["z_start_in"], traced["z_start_in"]]).astype(np.float64)
    stops = np.concatenate([a["z_end_in"], traced["z_end_in"]]).astype(np.float64)
    for steps in (m["search"]["n_steps"], 4 * m["search"]["n_steps"]):
        t = np.linspace(0, 1, steps)
        points = ends[:, :1] + t[None, :, None] * (ends[:, 1:] - ends[:, :1])
        in_area = np.zeros(points.shape[:2], dtype=bool)
        for seg, t0, t1 in zip(a["segment"], a["t_start"], a["t_end"]):
            in_area[seg] |= (t >= t0 - 1e-6) & (t <= t1 + 1e-6)
        outside = points[~in_area].reshape(-1, 2)
        missed = outside[disagree(outside)]
        if steps == m["search"]["n_steps"]:
            assert len(missed) == 0
        else:
            assert len(missed) <= 0.01 * len(outside)
            assert np.quantile(distance_to_segments(missed, starts, stops), 0.95) <= 0.025


def test_accuracy_matching_compares_the_stronger_net_by_its_epoch_nearest_the_weaker(tmp_path: Path) -> None:
    digits = xai.datasets.load("digits")
    train = digits.split("train")
    weak = LogisticRegression(max_iter=30).fit(train.x[:40].reshape(40, -1).numpy(), train.y[:40].numpy())
    trainer = {"max_epochs": 4, "limit_train_batches": 5, "limit_val_batches": 2}
    result = xai.discrepancy({"cnn": "cnn", "weak": weak}, digits, match_accuracy=True, anchors=20, neighbours=2,
                             n_steps=8, refine_rounds=0, realism_points=50, model_dir=tmp_path, trainer=trainer)
    m = result.metrics
    match = m["accuracy_match"]
    assert match["target"] == "weak" and match["split"] == "val"
    cnn = match["models"]["cnn"]
    # every epoch but the last was kept; the one chosen is the nearest the weak model's validation accuracy
    assert set(cnn["epochs"]) == {"1", "2", "3", "final"}
    gaps = {k: abs(acc - match["target_accuracy"]) for k, acc in cnn["epochs"].items()}
    assert cnn["epoch"] == min(gaps, key=gaps.get) and cnn["accuracy"] == cnn["epochs"][cnn["epoch"]]
    assert cnn["final_accuracy"] == cnn["epochs"]["final"] > match["target_accuracy"]
    # and that epoch's weights, read back from the store entry, are the cnn the search compared
    entry = tmp_path / m["models"]["cnn"]["store_entry"]
    net = xai.train(["cnn"], digits, model_dir=tmp_path, trainer=trainer).models["cnn"]
    if cnn["epoch"] != "final":
        net.load_state_dict(torch.load(entry / f"epoch-{cnn['epoch']}.pt", weights_only=True))
    test = digits.split("test")
    accuracy = float((net.predict_proba(test.x).argmax(1) == test.y.numpy()).mean())
    assert m["models"]["cnn"]["accuracy"]["test"] == pytest.approx(accuracy)
    assert "Accuracy matching" in result.to_markdown()
    # a kept epoch that was altered is refused, never loaded
    meta = json.loads((entry / "meta.json").read_text())
    assert [s["epoch"] for s in meta["snapshots"]] == [1, 2, 3]
    (entry / "epoch-1.pt").write_bytes(b"not weights")
    with pytest.raises(ValueError, match="missing or altered"):
        snapshot_file(entry, meta, 1)


def test_the_svm_gets_latent_rl_and_a_reason_for_the_gradient_methods(tmp_path: Path) -> None:
    result = xai.counterfactual("svm_rbf", "digits", methods=["wachter", "latent_rl"], target=3, n_images=4,
                                method_settings=CF_BUDGET, generator=VAE, trainer=TRAINER, model_dir=tmp_path)
    m = result.metrics
    assert "gradients" in m["methods"]["wachter"]["skipped"]
    rl = m["methods"]["latent_rl"]
    assert {"validity", "l1", "in_distribution", "nearest_train_rms"} <= set(rl) and set(m["targets"]) == {3}
    assert rl["n"] == 4 - m["predicted"].count(3)  # images already predicted 3 need no change


@pytest.mark.parametrize("target, message", [(12, "classes are 0..9"), ("seven", "use 'second' or a class index")])
def test_a_bad_counterfactual_target_is_refused_before_anything_trains(tmp_path: Path, target: object,
                                                                        message: str) -> None:
    with pytest.raises(UserError, match=message):
        xai.counterfactual("cnn", "digits", target=target, model_dir=tmp_path)  # type: ignore[arg-type]
    assert not any(tmp_path.iterdir())


def test_a_bad_index_is_refused_before_anything_trains(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"indices \[99999\] out of range"):
        xai.explain(["svm_rbf"], "digits", explainers=["occlusion"], indices=[99999], model_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_a_perturbation_that_applies_to_no_model_skips_it_without_training(tmp_path: Path, capfd) -> None:
    result = xai.consistency(["small_cnn"], "digits", perturbation="dropout", model_dir=tmp_path, trainer=TRAINER)
    assert result.metrics["table"] == [] and "no dropout" in result.metrics["skipped"]["small_cnn"]
    assert not any(tmp_path.iterdir()) and "Logging error" not in capfd.readouterr().err
    with pytest.raises(UserError, match="seed, shuffle, dropout, all"):
        xai.consistency(["small_cnn"], "digits", perturbation="init", model_dir=tmp_path)


def test_the_auxiliary_loss_needs_a_differentiable_classifier(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="needs a torch classifier"):
        xai.uncertainty("svm_rbf", "moons", aux_weight=1.0, generator_settings={"fit.steps": 10}, model_dir=tmp_path)
