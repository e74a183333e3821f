"""GAN training: the auxiliary MSP loss, and the guard that stops a diverging run with a clear message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.conftest import compose_config
from xai_cli.errors import UserError
from xai_cli.models.generators.mlp_gan import MLPDiscriminator
from xai_cli.training.gan import GANDiverged, aux_loss, translate
from xai_cli.training.store import ModelStore


def test_the_aux_loss_is_zero_exactly_when_the_class_leads_with_the_asked_msp() -> None:
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.7, 0.2, 0.1], [0.2, 0.7, 0.1]])
    labels, msp = torch.tensor([0, 0, 0]), torch.tensor([0.7, 0.9, 0.2])
    loss = aux_loss(probs.log(), labels, msp)
    assert loss[0].item() == pytest.approx(0.0, abs=1e-6)
    # on top, but less confident than asked: the Bernoulli KL of 0.9 from 0.7
    assert loss[1].item() == pytest.approx(0.9 * np.log(0.9 / 0.7) + 0.1 * np.log(0.1 / 0.3), rel=1e-4)
    # p_0 = 0.2 equals the asked MSP, but class 1 leads: the hinge log 0.7 − log 0.2 remains
    assert loss[2].item() == pytest.approx(np.log(0.7 / 0.2), rel=1e-4)


def test_the_aux_loss_still_pulls_a_saturated_classifier_down() -> None:
    # a confident classifier (p ≈ 1) asked for MSP 0.5: the pull on the label's logit is p − msp ≈ 0.5
    # (a squared error on the probability would give 2(p − msp)·p(1 − p) ≈ 2e-9 and teach nothing)
    logits = torch.tensor([[20.0, 0.0, 0.0]], requires_grad=True)
    aux_loss(logits, torch.tensor([0]), torch.tensor([0.5])).sum().backward()
    assert logits.grad[0, 0].item() == pytest.approx(0.5, abs=1e-3)


def test_translation_shifts_each_image_whole_and_passes_gradients() -> None:
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 8, 8)
    x[:, :, 3, 4] = 1.0  # one bright pixel per image
    x.requires_grad_(True)
    shifted = translate(x, 2)
    assert shifted.shape == x.shape and torch.equal(shifted.detach().sum((1, 2, 3)), torch.ones(64))
    where = shifted.detach()[:, 0].flatten(1).argmax(1)
    dy, dx = where // 8 - 3, where % 8 - 4
    assert dy.abs().max() == 2 and dx.abs().max() == 2 and len(set(zip(dy.tolist(), dx.tolist()))) > 10
    shifted.sum().backward()
    assert torch.equal(x.grad[:, :, 3, 4], torch.ones(64, 1))  # the generator learns through the shift
    assert translate(x, 0) is x


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


def test_path_length_regularisation_on_a_generator_without_a_synthesis_network_is_refused(tmp_path: Path) -> None:
    cfg = compose_config("uncertainty", ["dataset=moons", "generator.fit.steps=2", "+generator.fit.pl_weight=2"])
    data = instantiate(cfg.dataset)
    data.setup()
    with pytest.raises(UserError, match="pl_weight > 0 needs a generator with a mapping and a synthesis"):
        ModelStore(tmp_path).get("mlp_gan", cfg.generator, data, cfg.dataset, cfg.trainer, 0,
                                 context={"classifier": Uniform()})


class LateNaNDiscriminator(MLPDiscriminator):
    """Healthy for `healthy_calls` forward passes (counted across instances), NaN after while `failing`."""

    calls, healthy_calls, failing = 0, 30, True

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        type(self).calls += 1
        out = super().forward(x, condition)
        return out * float("nan") if self.failing and self.calls > self.healthy_calls else out


def _late_nan_gan(tmp_path: Path):
    """20 GAN steps on moons, checkpointed every 4, with LateNaNDiscriminator: (config, generator config, data,
    store)."""
    cfg = compose_config("uncertainty", ["dataset=moons", "generator.fit.steps=20", "generator.fit.checkpoint_every=4",
                                         "generator.fit.r1_gamma=0"])  # no R1: three discriminator calls per step
    gen_cfg = OmegaConf.merge(cfg.generator, {"model": {"discriminator": {
        "_target_": f"{__name__}.LateNaNDiscriminator"}}})
    data = instantiate(cfg.dataset)
    data.setup()
    return cfg, gen_cfg, data, ModelStore(tmp_path)


def test_a_run_that_diverges_keeps_its_last_good_checkpoint_and_the_same_command_resumes_from_it(
        tmp_path: Path) -> None:
    cfg, gen_cfg, data, store = _late_nan_gan(tmp_path)
    LateNaNDiscriminator.calls, LateNaNDiscriminator.failing = 0, True
    # calls 31–33 are step 11's: the checkpoint of step 8 is the last good one
    with pytest.raises(GANDiverged, match=r"diverged at step 11: .* last good checkpoint \(step 8\) is kept in"):
        store.get("mlp_gan", gen_cfg, data, cfg.dataset, cfg.trainer, 0, context={"classifier": Uniform()})
    partial = [p for p in tmp_path.iterdir() if p.name.startswith(".partial-")]
    assert len(partial) == 1 and (partial[0] / "last.ckpt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("mlp_gan-") and p.is_dir()]  # no store entry

    LateNaNDiscriminator.calls, LateNaNDiscriminator.failing = 0, False
    stored = store.get("mlp_gan", gen_cfg, data, cfg.dataset, cfg.trainer, 0, context={"classifier": Uniform()})
    assert stored.meta["fit"]["steps"] == 20
    assert LateNaNDiscriminator.calls == 3 * (20 - 8)  # only the steps after the checkpoint were run again
    assert not partial[0].exists()  # the entry supersedes the checkpoint


def test_a_resumed_run_is_the_model_an_uninterrupted_run_gives(tmp_path: Path) -> None:
    """Interrupted at step 11 of 20 (mid-epoch: moons has 16 batches an epoch) and resumed from step 8's
    checkpoint: the same weights, bit for bit, as 20 steps in one go (RNG state and data order restored)."""
    def weights(root: Path, interrupt: bool) -> dict[str, torch.Tensor]:
        cfg, gen_cfg, data, store = _late_nan_gan(root)
        if interrupt:
            LateNaNDiscriminator.calls, LateNaNDiscriminator.failing = 0, True
            with pytest.raises(GANDiverged, match="step 11"):
                store.get("mlp_gan", gen_cfg, data, cfg.dataset, cfg.trainer, 0, context={"classifier": Uniform()})
        LateNaNDiscriminator.calls, LateNaNDiscriminator.failing = 0, False
        stored = store.get("mlp_gan", gen_cfg, data, cfg.dataset, cfg.trainer, 0, context={"classifier": Uniform()})
        assert LateNaNDiscriminator.calls == 3 * (20 - 8 if interrupt else 20)
        return stored.model.state_dict()

    whole, resumed = weights(tmp_path / "whole", False), weights(tmp_path / "resumed", True)
    assert whole.keys() == resumed.keys()
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


class Confident:
    """A stand-in classifier: class 0 with probability 0.9 for every image."""

    def predict_proba(self, x: torch.Tensor) -> np.ndarray:
        return np.tile([0.9] + [0.1 / 9] * 9, (len(x), 1))


@pytest.mark.parametrize(("frozen", "learner"), [("lr_g", "loss_d"), ("lr_d", "loss_g")])
def test_a_few_stylegan2_lite_steps_on_digits_lower_each_players_loss(tmp_path: Path, frozen: str,
                                                                     learner: str) -> None:
    # each player against a frozen opponent, so that the other's progress cannot mask its own
    cfg = compose_config("uncertainty", ["generator=stylegan2_lite", "generator.fit.steps=30",
                                         "generator.fit.batch_size=16", f"generator.fit.{frozen}=0.0",
                                         "generator.model.generator.channels=[32,32,16,8]",
                                         "generator.model.discriminator.channels=[8,16,32,32]"])
    data = instantiate(cfg.dataset)
    data.setup()
    stored = ModelStore(tmp_path).get("stylegan2_lite", cfg.generator, data, cfg.dataset, cfg.trainer, 0,
                                      context={"classifier": Confident()})
    fit = stored.meta["fit"]
    assert fit["steps"] == 30
    assert fit[f"final_{learner}"] < fit[f"first_{learner}"] - 0.1, fit
    x = stored.model.generate(stored.model.sample_latent(4), torch.arange(4), torch.full((4,), 0.9))
    assert x.shape == (4, 1, 28, 28) and torch.isfinite(x).all()


@pytest.mark.parametrize("damage", ["truncate", "foreign"])
def test_a_damaged_checkpoint_is_discarded_and_training_starts_afresh(tmp_path: Path, damage: str, caplog) -> None:
    """A truncated or tampered last.ckpt used to fail every rerun of the command; now it is set aside."""
    cfg, gen_cfg, data, store = _late_nan_gan(tmp_path)
    LateNaNDiscriminator.calls, LateNaNDiscriminator.failing = 0, True
    with pytest.raises(GANDiverged):
        store.get("mlp_gan", gen_cfg, data, cfg.dataset, cfg.trainer, 0, context={"classifier": Uniform()})
    (partial,) = [p for p in tmp_path.iterdir() if p.name.startswith(".partial-")]
    checkpoint = partial / "last.ckpt"
    if damage == "truncate":
        checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    else:  # a checkpoint of other networks under this name
        saved = torch.load(checkpoint, weights_only=True)
        saved["state_dict"] = {k: v[..., :1] if v.ndim else v for k, v in saved["state_dict"].items()}
        torch.save(saved, checkpoint)
    LateNaNDiscriminator.calls, LateNaNDiscriminator.failing = 0, False
    with caplog.at_level("WARNING", logger="xai"):
        stored = store.get("mlp_gan", gen_cfg, data, cfg.dataset, cfg.trainer, 0, context={"classifier": Uniform()})
    assert stored.meta["fit"]["steps"] == 20 and LateNaNDiscriminator.calls == 3 * 20  # every step run again
    assert "cannot resume from" in caplog.text and "training starts afresh" in caplog.text
