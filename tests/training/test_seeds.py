"""Each perturbation of `xai consistency` varies exactly one source of training randomness (asserted on
what training really did: initial weights, the batches seen, the dropout masks drawn)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from tests.conftest import FAST, compose_config
from xai_cli.analysis.consistency import BASE, plan_copies
from xai_cli.training.module import TrainingModule
from xai_cli.training.store import ModelStore


TRAINING_STEP = TrainingModule.training_step  # the real one, before any test wraps it


@pytest.fixture(scope="module")
def setup() -> tuple[Any, Any]:
    cfg = compose_config("consistency", ["classifiers=[mlp]", *FAST])
    data = instantiate(cfg.dataset)
    data.setup()
    return cfg, data


def trace(cfg: Any, data: Any, seeds: dict[str, int], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Train one copy for three steps and record what it started from and what it saw."""
    plain = OmegaConf.create(OmegaConf.to_container(cfg.classifiers.mlp, resolve=True))
    copy_cfg = OmegaConf.merge(plain, {"fit": {"seeds": seeds}})
    model = ModelStore._build(copy_cfg, int(cfg.seed))
    seen: dict[str, Any] = {"init": {k: v.clone() for k, v in model.state_dict().items()}, "labels": [], "masks": []}
    def recording_step(self: TrainingModule, batch: Any, batch_idx: int) -> torch.Tensor:
        seen["labels"].append(batch[1].tolist())
        return TRAINING_STEP(self, batch, batch_idx)

    monkeypatch.setattr(TrainingModule, "training_step", recording_step)
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            # where the input is non-zero the output shows the mask: (dropped, known)
            m.register_forward_hook(lambda mod, inp, out: seen["masks"].append(((out == 0), inp[0] != 0))
                                    if mod.training else None)
    instantiate(copy_cfg.fit).fit(model, data, cfg.trainer, int(cfg.seed), "copy")
    return seen


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def same_masks(a: list[tuple[torch.Tensor, torch.Tensor]], b: list[tuple[torch.Tensor, torch.Tensor]]) -> bool:
    """Equal wherever both runs reveal the mask (non-zero inputs; batches may hold other images)."""
    assert len(a) == len(b) > 0
    return all(torch.equal(da[ka & kb], db[ka & kb]) for (da, ka), (db, kb) in zip(a, b))


def test_each_perturbation_varies_only_its_own_randomness(setup: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, data = setup
    plan = plan_copies(["seed", "shuffle", "dropout"], 2, int(cfg.seed))
    base, seed, shuffle, dropout = (trace(cfg, data, plan[k], monkeypatch)
                                    for k in (BASE, "seed-1", "shuffle-1", "dropout-1"))
    assert base["masks"] and base["labels"]
    # seed: everything differs
    assert not same_weights(base["init"], seed["init"]) and base["labels"] != seed["labels"]
    assert not same_masks(base["masks"], seed["masks"])
    # shuffle: same initial weights and dropout stream, another batch order
    assert same_weights(base["init"], shuffle["init"]) and base["labels"] != shuffle["labels"]
    assert same_masks(base["masks"], shuffle["masks"])
    # dropout: same initial weights and batch order, other masks
    assert same_weights(base["init"], dropout["init"]) and base["labels"] == dropout["labels"]
    assert not same_masks(base["masks"], dropout["masks"])
    # and the base copy is reproducible
    again = trace(cfg, data, plan[BASE], monkeypatch)
    assert same_weights(base["init"], again["init"]) and base["labels"] == again["labels"]
    assert same_masks(base["masks"], again["masks"])


def test_svm_copies_see_the_same_subset_of_images_in_another_order(setup: Any) -> None:
    """A capped scikit-learn fit draws its subset by the run's seed: copies varying the order seed are trained on
    the same images (as retrained nets are), only their order differs (drawn by the copy's seed, the paper's
    SVM copies were not trained on different data)."""
    from xai_cli.training.fit import SklearnFit

    _, data = setup

    class Recording:
        def set_seed(self, seed: int) -> None:
            pass

        def fit(self, x: Any, y: Any) -> None:
            self.x = x

    seen = {}
    for label, seeds in plan_copies(["seed"], 3, 0).items():
        model = Recording()
        fit = SklearnFit(max_train_samples=300, seeds=seeds)
        fit.fit(model, data, OmegaConf.create({}), 0, label)  # type: ignore[arg-type]
        seen[label] = model.x
    rows = {label: sorted(map(bytes, x)) for label, x in seen.items()}
    assert all(len(x) == 300 for x in seen.values())
    assert rows["seed-1"] == rows[BASE] and rows["seed-2"] == rows[BASE]  # the same images...
    assert not (seen["seed-1"] == seen[BASE]).all()  # ...in another order
    other_run = Recording()
    SklearnFit(max_train_samples=300).fit(other_run, data, OmegaConf.create({}), 1, "svm")  # type: ignore[arg-type]
    assert sorted(map(bytes, other_run.x)) != rows[BASE]  # another run seed: another subset


def test_a_calibrated_sklearn_model_is_calibrated_on_training_images_its_subset_left_out(setup: Any) -> None:
    """svm_rbf's Platt scaling: fitted once on the subset and calibrated on other training images, the same for
    every copy, where the set leaves enough out; on a smaller set, the estimator's own cross-validation."""
    from xai_cli.training.fit import SklearnFit

    _, data = setup
    train = data.split("train")

    class Recording:
        calibrates = True

        def set_seed(self, seed: int) -> None:
            pass

        def fit(self, x: Any, y: Any) -> None:
            self.x, self.held_out = x, None

        def fit_calibrated_on(self, x: Any, y: Any, x_cal: Any, y_cal: Any) -> None:
            self.x, self.held_out = x, x_cal

    def rows(x: Any) -> set[bytes]:
        return set(map(bytes, x))

    seen = {}
    for label, seeds in plan_copies(["seed"], 2, 0).items():
        model = Recording()
        result = SklearnFit(max_train_samples=300, calibration_images=200, seeds=seeds).fit(
            model, data, OmegaConf.create({}), 0, label)  # type: ignore[arg-type]
        assert result.details == {"train_samples": 300, "calibration_samples": 200}
        seen[label] = model
    base = seen[BASE]
    assert len(base.held_out) == 200 and not rows(base.held_out) & rows(base.x)  # other images...
    assert rows(base.held_out) <= rows(train.x.numpy())  # ...of the training split
    assert rows(seen["seed-1"].held_out) == rows(base.held_out)  # the same for every copy
    too_few = Recording()
    SklearnFit(max_train_samples=300, calibration_images=len(train)).fit(
        too_few, data, OmegaConf.create({}), 0, "svm")  # type: ignore[arg-type]
    assert too_few.held_out is None and len(too_few.x) == 300  # cross-validated instead
