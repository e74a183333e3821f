"""stylegan2_lite: shapes, sizes, demodulation, and a condition that conditions."""

from __future__ import annotations

import pytest
import torch

from xai_cli.models.generators.conditional_gan import condition_vector
from xai_cli.models.generators.stylegan2_lite import (MappingNetwork, ModulatedConv2d, StyleGAN2Discriminator,
                                                      StyleGAN2Generator, _fit_to)


def test_demodulation_keeps_unit_variance_for_unit_variance_input() -> None:
    torch.manual_seed(0)
    conv = ModulatedConv2d(64, 64, 3, w_dim=32)
    x = torch.randn(8, 64, 16, 16)
    w = 3 * torch.randn(8, 32)  # styles far from 1: without demodulation the output scale would follow them
    inner = conv(x, w)[..., 1:-1, 1:-1]  # away from the zero padding
    assert inner.var().item() == pytest.approx(1.0, abs=0.1)
    conv.demodulate = False
    assert abs(conv(x, w)[..., 1:-1, 1:-1].var().item() - 1.0) > 0.5


def test_generator_and_discriminator_shapes_and_sizes() -> None:
    torch.manual_seed(0)
    g = StyleGAN2Generator(latent_dim=32, num_classes=10, output_shape=(1, 28, 28), w_dim=64, channels=(64, 64, 32, 16))
    d = StyleGAN2Discriminator(num_classes=10, input_shape=(1, 28, 28), channels=(16, 32, 64, 64), features=64)
    c = condition_vector(torch.arange(5), torch.linspace(0.4, 1.0, 5), 10)
    x = g(torch.randn(5, 32), c)
    assert x.shape == (5, 1, 28, 28) and d(x, c).shape == (5,)
    # mapping: embed (11→32) and two layers (64→64, 64→64); per resolution two styled layers and a to-image
    mapping = 11 * 32 + 32 + 64 * 64 + 64 + 64 * 64 + 64
    styled = lambda i, o: o * i * 9 + 64 * i + i + 1 + o  # noqa: E731  weight, affine, noise strength, bias
    to_image = lambda i: i + 64 * i + i  # noqa: E731
    synthesis = 64 * 16 + styled(64, 64) + styled(64, 64) + to_image(64) + styled(64, 64) + styled(64, 64) \
        + to_image(64) + styled(64, 32) + styled(32, 32) + to_image(32) + styled(32, 16) + styled(16, 16) + to_image(16)
    assert sum(p.numel() for p in g.parameters()) == mapping + synthesis


def test_pad_and_crop_are_inverse_between_28_and_32_px() -> None:
    x = torch.rand(2, 1, 28, 28)
    padded = _fit_to(x, 32)
    assert padded.shape[-1] == 32 and torch.equal(_fit_to(padded, 28), x)


def test_the_msp_condition_changes_the_image_for_the_same_latent_and_noise() -> None:
    torch.manual_seed(0)
    g = StyleGAN2Generator(latent_dim=16, num_classes=10, output_shape=(1, 28, 28), w_dim=32, channels=(32, 32, 16, 8))
    z = torch.randn(3, 16)
    labels = torch.tensor([1, 1, 1])
    with torch.no_grad():
        for layer in g.modules():
            if hasattr(layer, "noise_strength"):
                layer.noise_strength.fill_(0.0)  # no per-pixel noise: only the condition differs
        high = g(z, condition_vector(labels, torch.full((3,), 1.0), 10))
        low = g(z, condition_vector(labels, torch.full((3,), 0.5), 10))
        again = g(z, condition_vector(labels, torch.full((3,), 1.0), 10))
    assert torch.equal(high, again) and not torch.allclose(high, low)


def test_styles_start_at_unit_scale_so_the_latent_moves_them() -> None:
    # with torch's default initialisation the styles varied by about 0.06 across latents (measured): the
    # generator learnt to ignore z; the unit-gain initialisation starts them at about 0.6
    torch.manual_seed(0)
    mapping, conv = MappingNetwork(64, 11, 128, layers=2), ModulatedConv2d(16, 16, 3, w_dim=128)
    condition = condition_vector(torch.zeros(512, dtype=torch.long), torch.ones(512), 10)
    with torch.no_grad():
        styles = conv.affine(mapping(torch.randn(512, 64), condition))
    assert styles.std(0).mean() > 0.4 and styles.mean().item() == pytest.approx(1.0, abs=0.2)


def _quiet_generator(mixing_prob: float) -> StyleGAN2Generator:
    torch.manual_seed(0)
    g = StyleGAN2Generator(latent_dim=16, num_classes=10, output_shape=(1, 28, 28), w_dim=32,
                           channels=(16, 16, 8, 8), mixing_prob=mixing_prob)
    with torch.no_grad():
        for layer in g.modules():
            if hasattr(layer, "noise_strength"):
                layer.noise_strength.fill_(0.0)  # no per-pixel noise: only the styles differ
    return g


def test_style_mixing_changes_training_samples_only() -> None:
    mixing, plain = _quiet_generator(1.0), _quiet_generator(0.0)
    z, c = torch.randn(8, 16), condition_vector(torch.arange(8), torch.ones(8), 10)
    with torch.no_grad():
        assert torch.equal(mixing.eval()(z, c), plain.eval()(z, c))  # sampling never mixes
        torch.manual_seed(1)
        mixed = mixing.train()(z, c)
        torch.manual_seed(1)
        unmixed = plain.train()(z, c)
        # the same w for every block through synthesis is exactly the plain forward
        ws = plain.mapping(z, c)[:, None].expand(-1, plain.num_ws, -1)
        assert torch.allclose(plain.synthesis(ws), unmixed)
    assert not torch.allclose(mixed, unmixed)


def test_the_path_length_penalty_reaches_the_mapping_and_tracks_its_mean() -> None:
    from xai_cli.models.generators.conditional_gan import ConditionalGAN
    from xai_cli.training.gan import GANModule

    g = _quiet_generator(0.0)
    d = StyleGAN2Discriminator(num_classes=10, input_shape=(1, 28, 28), channels=(8, 8, 16, 16), features=16)
    module = GANModule(ConditionalGAN(g, d, 16, 10, (1, 28, 28)), None, 1e-3, 1e-3, (0.0, 0.99), 0.0, 16, 0.99,
                       0.0, pl_weight=2.0)
    penalty = module.path_length_penalty(condition_vector(torch.arange(8), torch.ones(8), 10))
    assert torch.isfinite(penalty) and penalty > 0 and module.pl_mean > 0
    penalty.backward()
    assert g.mapping.net[0].weight.grad is not None and g.mapping.net[0].weight.grad.abs().sum() > 0
