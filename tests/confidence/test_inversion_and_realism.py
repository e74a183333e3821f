"""Latent inversion finds a latent that reproduces the image; KID in a classifier's features tells alike from
unlike image sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from xai_cli.confidence.inversion import invert, lower_confidence
from xai_cli.confidence.realism import PenultimateFeatures, ScaledFeatures, kernel_distance, mean_norm

torch.manual_seed(0)
BASIS = torch.randn(8, 36)


def toy_generate(z: torch.Tensor, labels: torch.Tensor, msp: torch.Tensor) -> torch.Tensor:
    """A smooth generator of 6×6 images: the class shifts the mean, the MSP scales the contrast."""
    return (torch.tanh(z @ BASIS) * msp[:, None] + 0.1 * labels[:, None]).reshape(len(z), 1, 6, 6)


def test_inversion_recovers_an_image_the_generator_can_make() -> None:
    z_true = torch.randn(1, 8, generator=torch.Generator().manual_seed(3))
    x = toy_generate(z_true, torch.tensor([2]), torch.tensor([0.9]))[0]
    result = invert(toy_generate, x, 2, 0.9, 8, steps=400, restarts=8, seed=0)
    assert result.rmse < 0.02 and result.reconstruction.shape == x.shape
    far = invert(toy_generate, torch.full_like(x, 5.0), 2, 0.9, 8, steps=50, restarts=2, seed=0)
    assert far.rmse > 3  # an image out of the generator's range is reported as badly reconstructed


def test_lowering_the_msp_condition_keeps_the_latent_and_class() -> None:
    z_true = torch.randn(1, 8, generator=torch.Generator().manual_seed(3))
    inverted = invert(toy_generate, toy_generate(z_true, torch.tensor([1]), torch.tensor([1.0]))[0], 1, 1.0, 8,
                      steps=300, restarts=4, seed=0)

    def contrast(images: torch.Tensor) -> np.ndarray:  # a "classifier" whose confidence is the image's contrast
        c = (images - 0.1).abs().flatten(1).mean(1, keepdim=True).numpy()
        return np.concatenate([1 - c, c], 1)

    images, probs = lower_confidence(toy_generate, contrast, inverted, 1, np.array([1.0, 0.7, 0.4]))
    assert images.shape == (3, 1, 6, 6)
    assert probs[0, 1] > probs[1, 1] > probs[2, 1]
    assert probs[2, 1] == pytest.approx(0.4 * probs[0, 1], rel=0.05)


def test_penultimate_features_are_the_input_of_the_last_linear_layer() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(36, 5), nn.ReLU(), nn.Linear(5, 2))
    x = torch.randn(4, 1, 6, 6)
    expected = torch.relu(net[1](x.flatten(1)))
    assert torch.allclose(PenultimateFeatures(net)(x).float(), expected)
    assert len(net[3]._forward_hooks) == 0  # the hook is gone afterwards


def test_kid_is_near_zero_for_samples_of_one_distribution_and_large_for_another() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(36, 16), nn.ReLU(), nn.Linear(16, 2))
    features = PenultimateFeatures(net)
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(300, 1, 6, 6, generator=g), torch.rand(300, 1, 6, 6, generator=g)
    same, _ = kernel_distance(features, a, b, seed=0)
    near, _ = kernel_distance(features, a, 0.9 * b + 0.1, seed=0)
    far, _ = kernel_distance(features, a, 0.5 * b + 0.5, seed=0)
    assert abs(same) < 0.02 * far and same < near < far
    assert kernel_distance(features, a, b, seed=0)[0] == pytest.approx(same, abs=1e-12)  # seeded subsets


def test_scaled_features_make_kid_blind_to_the_size_of_the_features() -> None:
    """The same two distributions, once with features ten times larger: raw KID moves by orders of magnitude,
    KID on features divided by the real set's mean norm does not."""
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(200, 8, generator=g), torch.randn(200, 8, generator=g) + 0.5
    small, large = nn.Identity(), ScaledFeatures(nn.Identity(), 0.1)  # the second: features x10
    raw_small, _ = kernel_distance(small, real, fake, seed=0)
    raw_large, _ = kernel_distance(large, real, fake, seed=0)
    assert raw_large > 100 * raw_small
    scaled_small, _ = kernel_distance(ScaledFeatures(small, mean_norm(small, real)), real, fake, seed=0)
    scaled_large, _ = kernel_distance(ScaledFeatures(large, mean_norm(large, real)), real, fake, seed=0)
    assert scaled_large == pytest.approx(scaled_small, rel=1e-6)
