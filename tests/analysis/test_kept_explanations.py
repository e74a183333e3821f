"""A stored model's explanations, kept in its entry: read back only for the same method, settings, images and
seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import xai_cli as xai
from xai_cli.analysis.context import EXPLANATIONS, Model, RunContext, specs_from
from xai_cli.analysis.kept import explanation_key
from xai_cli.config import compose
from xai_cli.explainers.perturbation import KernelShapExplainer
from xai_cli.training.store import ModelStore


class Refusing:
    """A model that must not be asked: the kept maps answer."""

    def predict_proba(self, x: object) -> np.ndarray:
        raise AssertionError("asked the model although its maps were kept")


def _stored_logreg(tmp_path: Path, keep: bool = True) -> tuple[RunContext, Model]:
    digits = xai.datasets.load("digits")
    cfg = compose("train", ["classifiers=[logreg]"])
    ctx = RunContext(digits, ModelStore(tmp_path, keep_explanations=keep), cfg.trainer)
    return ctx, ctx.trained(specs_from(cfg.classifiers))["logreg"]


def _ask(ctx: RunContext, model: Model, explainer: KernelShapExplainer, n: int = 4, seed: int = 0) -> np.ndarray:
    test = ctx.data.split("test")
    return ctx.explanations(model, explainer, test.x[:n], test.y[:n], seed)


def test_the_same_question_is_answered_from_the_entry_and_any_other_is_computed(tmp_path: Path) -> None:
    ctx, model = _stored_logreg(tmp_path)
    explainer = KernelShapExplainer(n_samples=60, n_segments=8, seed=0)
    first = _ask(ctx, model, explainer)
    (kept,) = (model.stored.path / EXPLANATIONS).glob("*.npy")
    assert first.shape == (4, *ctx.data.split("test").x.shape[2:]) and np.abs(first).sum() > 0
    refusing = Model("logreg", Refusing(), "store", model.spec, model.stored)  # type: ignore[arg-type]
    again = _ask(ctx, refusing, explainer)
    np.testing.assert_array_equal(again, first)
    assert again.dtype == first.dtype

    others = (KernelShapExplainer(n_samples=80, n_segments=8, seed=0),
              KernelShapExplainer(n_samples=60, n_segments=8, seed=1))
    for other in others:
        with pytest.raises(AssertionError, match="asked the model"):  # another setting: another question
            _ask(ctx, refusing, other)
    with pytest.raises(AssertionError, match="asked the model"):  # other images
        _ask(ctx, refusing, explainer, n=5)
    with pytest.raises(AssertionError, match="asked the model"):  # another torch seed
        _ask(ctx, refusing, explainer, seed=1)
    explainer.set_background(ctx.background(8))
    with pytest.raises(AssertionError, match="asked the model"):  # another reference
        _ask(ctx, refusing, explainer)
    explainer.set_background(None)  # type: ignore[arg-type]

    kept.write_bytes(b"not an array")  # damaged: computed again, and kept again
    np.testing.assert_array_equal(_ask(ctx, model, explainer), first)
    np.testing.assert_array_equal(np.load(kept, allow_pickle=False), first)
    # an earlier epoch standing in for the model is never answered with the final weights' maps
    with pytest.raises(AssertionError, match="asked the model"):
        earlier = Model("logreg", Refusing(), "store", model.spec, model.stored, epoch=1)  # type: ignore[arg-type]
        _ask(ctx, earlier, explainer)


def test_nothing_is_kept_when_the_store_says_so_or_the_model_is_not_stored(tmp_path: Path) -> None:
    ctx, model = _stored_logreg(tmp_path, keep=False)
    _ask(ctx, model, KernelShapExplainer(n_samples=60, n_segments=8, seed=0))
    assert not (model.stored.path / EXPLANATIONS).exists()
    # a model not from the store is asked every time, even by a store that keeps (it has no entry to keep in)
    keeping, _ = _stored_logreg(tmp_path, keep=True)
    explainer = KernelShapExplainer(n_samples=60, n_segments=8, seed=0)
    _ask(keeping, Model("logreg", model.classifier, "given"), explainer)
    with pytest.raises(AssertionError, match="asked the model"):
        _ask(keeping, Model("logreg", Refusing(), "given"), explainer)  # type: ignore[arg-type]
    assert not list(tmp_path.rglob(f"{EXPLANATIONS}/*.npy"))


def test_a_setting_that_is_not_a_plain_value_is_never_keyed() -> None:
    x, y = torch.zeros(2, 1, 8, 8), torch.tensor([0, 1])
    explainer = KernelShapExplainer(n_samples=60, n_segments=8, seed=0)
    key = explanation_key(explainer, x, y, 0, torch.device("cpu"))
    assert key is not None and key == explanation_key(explainer, x.clone(), y.clone(), 0, torch.device("cpu"))
    explainer.segmenter = lambda image: image  # type: ignore[attr-defined]  # a function: cannot be told apart
    assert explanation_key(explainer, x, y, 0, torch.device("cpu")) is None


def test_a_warm_explain_reads_maps_and_measurements_and_says_so(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """`xai explain` keeps each stored model's maps with what it measured of them; the same question again is
    answered from the entry (the method is not run), the same numbers, marked as read; another question is
    computed."""
    ask = dict(explainers=["kernel_shap"], n_images=4, stability={"n_images": 2, "n_samples": 2},
               randomization={"n_images": 2}, model_dir=tmp_path / "models")
    first = xai.explain(["logreg"], "digits", **ask)
    row = first.metrics["explainers"]["kernel_shap"]["logreg"]
    assert row["kept"] is False

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("explained again although the entry keeps the answer")

    monkeypatch.setattr(KernelShapExplainer, "_explain_batch", refuse)
    again = xai.explain(["logreg"], "digits", **ask)
    assert again.metrics["explainers"]["kernel_shap"]["logreg"] == {**row, "kept": True}
    np.testing.assert_array_equal(again.attributions["logreg/kernel_shap"], first.attributions["logreg/kernel_shap"])
    assert "* Read from the model's store entry" in again.render().to_markdown()
    with pytest.raises(AssertionError, match="explained again"):  # measured otherwise: another question
        xai.explain(["logreg"], "digits", **{**ask, "stability": {"n_images": 2, "n_samples": 3}})


def test_a_warm_counterfactual_search_reads_what_it_found_and_says_so(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from xai_cli.counterfactuals.gradient import Wachter

    ask = dict(methods=["wachter"], n_images=3, model_dir=tmp_path / "models",
               trainer={"max_epochs": 1, "limit_train_batches": 3, "limit_val_batches": 1},
               method_settings={"wachter": {"search_rounds": 2, "steps": 10}},
               generator={"fit.max_epochs": 1, "fit.min_train_images": 0})
    first = xai.counterfactual("mlp", "digits", **ask)
    row = first.metrics["methods"]["wachter"]
    assert row["kept"] is False and row["n"] > 0

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("searched again although the entry keeps the answer")

    monkeypatch.setattr(Wachter, "generate", refuse)
    again = xai.counterfactual("mlp", "digits", **ask)
    assert again.metrics["methods"]["wachter"] == {**row, "kept": True}
    np.testing.assert_array_equal(again.counterfactuals["wachter"], first.counterfactuals["wachter"])
    assert "* Read from the classifier's store entry" in again.render().to_markdown()
    with pytest.raises(AssertionError, match="searched again"):  # other settings: another question
        xai.counterfactual("mlp", "digits",
                           **{**ask, "method_settings": {"wachter": {"search_rounds": 2, "steps": 11}}})
