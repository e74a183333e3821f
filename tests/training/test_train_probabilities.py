"""A stored model's probabilities on a split's inputs, kept in its entry after the first time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import xai_cli as xai
from xai_cli.analysis.context import PROBABILITIES, Model, RunContext, specs_from
from xai_cli.config import compose
from xai_cli.training.store import ModelStore


def test_the_second_ask_reads_what_the_first_computed_and_a_bad_file_is_computed_again(tmp_path: Path) -> None:
    digits = xai.datasets.load("digits")
    cfg = compose("train", ["classifiers=[logreg]"])
    ctx = RunContext(digits, ModelStore(tmp_path), cfg.trainer)
    model = ctx.trained(specs_from(cfg.classifiers))["logreg"]
    kept = model.stored.path / PROBABILITIES.format(split="train")
    assert not kept.exists()
    first = ctx.train_probabilities(model)
    assert kept.is_file() and first.shape == (len(digits.split("train")), 10)

    class Refusing:  # the kept array answers: the model is not asked again
        def predict_proba(self, x: object) -> np.ndarray:
            raise AssertionError("asked the model although its probabilities were kept")

    again = ctx.train_probabilities(Model("logreg", Refusing(), "store", model.spec, model.stored))
    np.testing.assert_array_equal(again, first)
    assert again.dtype == first.dtype  # exactly what was computed: warm and cold runs choose the same anchors

    kept.write_bytes(b"not an array")
    ctx = RunContext(digits, ModelStore(tmp_path), cfg.trainer)  # a new run: nothing held in memory
    np.testing.assert_array_equal(ctx.train_probabilities(model), first)  # recomputed, and kept again
    np.testing.assert_array_equal(np.load(kept, allow_pickle=False), first)
    # an earlier epoch standing in for the model is never answered with the final weights' array
    stand_in = Model("logreg", Refusing(), "store", model.spec, model.stored, epoch=1)
    with pytest.raises(AssertionError, match="asked the model"):
        ctx.train_probabilities(stand_in)


def test_a_warm_entry_answers_its_test_accuracy_without_the_model(tmp_path: Path) -> None:
    digits = xai.datasets.load("digits")
    cfg = compose("train", ["classifiers=[logreg]"])
    model = RunContext(digits, ModelStore(tmp_path), cfg.trainer).trained(specs_from(cfg.classifiers))["logreg"]
    first = RunContext(digits, ModelStore(tmp_path), cfg.trainer).accuracy(model)
    assert (model.stored.path / PROBABILITIES.format(split="test")).is_file()
    assert first == pytest.approx(float((model.classifier.predict_proba(digits.split("test").x).argmax(1)
                                         == digits.split("test").y.numpy()).mean()))

    class Refusing:
        def predict_proba(self, x: object) -> np.ndarray:
            raise AssertionError("asked the model although its probabilities were kept")

    warm = RunContext(digits, ModelStore(tmp_path), cfg.trainer)
    assert warm.accuracy(Model("logreg", Refusing(), "store", model.spec, model.stored)) == first
