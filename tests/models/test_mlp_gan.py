"""mlp_gan: shapes, sizes, and a condition that really conditions."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from tests.conftest import compose_config
from xai_cli.models.generators.conditional_gan import ConditionalGAN


def build(dataset: str) -> ConditionalGAN:
    # on 28 px images the default is stylegan2_lite: ask for the MLP one
    image_gan = [] if dataset == "moons" else ["generator=mlp_gan_images"]
    cfg = compose_config("uncertainty", [f"dataset={dataset}", *image_gan])
    torch.manual_seed(0)
    return instantiate(cfg.generator.model)


@pytest.mark.parametrize(("dataset", "shape", "hidden", "latent"), [("moons", (2,), 128, 8),
                                                                    ("digits", (1, 28, 28), 256, 32)])
def test_shapes_and_parameter_counts(dataset: str, shape: tuple[int, ...], hidden: int, latent: int) -> None:
    gan = build(dataset)
    n_out = int(torch.tensor(shape).prod())
    k = 10 if dataset == "digits" else 2
    embed = 16
    # G: embedding, then 5 linear layers [z, e] → h → h → h → h → out
    g_params = (k + 1) * embed + embed + (latent + embed) * hidden + hidden + 3 * (hidden * hidden + hidden) \
        + hidden * n_out + n_out
    # D: 5 linear layers x → h → h → h → h → 1, and the projection embedding (no bias)
    d_params = n_out * hidden + hidden + 3 * (hidden * hidden + hidden) + hidden + 1 + (k + 1) * hidden
    assert sum(p.numel() for p in gan.generator.parameters()) == g_params
    assert sum(p.numel() for p in gan.discriminator.parameters()) == d_params
    assert sum(isinstance(m, nn.Linear) for m in gan.generator.body.modules()) + 1 == 5
    z = gan.sample_latent(6)
    x = gan.generate(z, torch.arange(6) % k, torch.linspace(0.5, 1.0, 6))
    assert x.shape == (6, *shape)
    if dataset == "digits":
        assert x.min() >= 0 and x.max() <= 1  # pixels: sigmoid outputs
    assert gan.discriminator(x, gan.condition(torch.arange(6) % k, torch.ones(6))).shape == (6,)


def test_the_msp_and_the_class_both_change_the_sample_for_the_same_latent() -> None:
    gan = build("moons")
    z = gan.sample_latent(4)
    base = gan.generate(z, torch.zeros(4, dtype=torch.long), torch.full((4,), 0.99))
    assert not torch.allclose(base, gan.generate(z, torch.zeros(4, dtype=torch.long), torch.full((4,), 0.6)))
    assert not torch.allclose(base, gan.generate(z, torch.ones(4, dtype=torch.long), torch.full((4,), 0.99)))
    assert torch.equal(base, gan.generate(z, torch.zeros(4, dtype=torch.long), torch.full((4,), 0.99)))


def test_the_ema_generator_moves_towards_the_live_one() -> None:
    gan = build("moons")
    with torch.no_grad():
        for p in gan.generator.parameters():
            p.add_(1.0)
    before = [p.clone() for p in gan.generator_ema.parameters()]
    gan.update_ema(0.9)
    for old, ema, live in zip(before, gan.generator_ema.parameters(), gan.generator.parameters()):
        torch.testing.assert_close(ema, 0.9 * old + 0.1 * live)
