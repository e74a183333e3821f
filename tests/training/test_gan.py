"""GAN training: the auxiliary MSP loss, and the guard that stops a diverging run with a clear message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.conftest import compose_config
from xai_cli.models.generators.mlp_gan import MLPDiscriminator
from xai_cli.training.gan import GANDiverged, aux_loss
from xai_cli.training.store import ModelStore


def test_the_aux_loss_is_zero_exactly_when_the_class_leads_with_the_asked_msp() -> None:
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.7, 0.2, 0.1], [0.2, 0.7, 0.1]])
    labels, msp = torch.tensor([0, 0, 0]), torch.tensor([0.7, 0.9, 0.2])
    loss = aux_loss(probs.log(), labels, msp)
    assert loss[0].item() == pytest.approx(0.0, abs=1e-6)
    assert loss[1].item() == pytest.approx(0.2 ** 2, rel=1e-4)  # on top, but less confident than asked
    # p_0 = 0.2 equals the asked MSP, but class 1 leads: the hinge log 0.7 − log 0.2 remains
    assert loss[2].item() == pytest.approx(np.log(0.7 / 0.2), rel=1e-4)


class NaNDiscriminator(MLPDiscriminator):
    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return super().forward(x, condition) * float("nan")


class Uniform:
    def predict_proba(self, x: torch.Tensor) -> np.ndarray:
        return np.full((len(x), 2), 0.5)


def test_a_diverging_run_stops_with_a_clear_message_and_stores_nothing(tmp_path: Path) -> None:
    cfg = compose_config("uncertainty", ["dataset=moons", "generator.fit.steps=20"])
    gen_cfg = OmegaConf.merge(cfg.generator, {"model": {"discriminator": {
        "_target_": f"{__name__}.NaNDiscriminator"}}})
    data = instantiate(cfg.dataset)
    data.setup()
    store = ModelStore(tmp_path)
    with pytest.raises(GANDiverged, match="diverged at step 1: the discriminator loss is nan"):
        store.get("mlp_gan", gen_cfg, data, cfg.dataset, cfg.trainer, 0, context={"classifier": Uniform()})
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []
