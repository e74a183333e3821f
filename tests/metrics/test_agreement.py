"""Distinguishability of explanations and the consistency measure."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xai_cli.explainers.gradient import IntegratedGradientsExplainer
from xai_cli.metrics.agreement import (consistency, consistency_interval, distinguishability, jensen_shannon,
                                       kolmogorov_smirnov, wilcoxon_statistic)
from xai_cli.models.classifiers.cnn import SmallCNN


def test_two_copies_with_identical_weights_are_indistinguishable() -> None:
    torch.manual_seed(0)
    a = SmallCNN((1, 28, 28), 10).eval()
    b = SmallCNN((1, 28, 28), 10).eval()
    b.load_state_dict(a.state_dict())
    x, y = torch.rand(60, 1, 28, 28), torch.arange(60) % 10
    explainer = IntegratedGradientsExplainer()
    maps_a, maps_b = explainer.explain(a, x, y).numpy(), explainer.explain(b, x, y).numpy()
    assert distinguishability(maps_a, maps_b, y.numpy()) == 0.0  # computed: each held-out image appears once per model
    assert jensen_shannon(maps_a, maps_b) == 0.0 and kolmogorov_smirnov(maps_a, maps_b) == 0.0
    assert wilcoxon_statistic(maps_a, maps_b) == 0.0


def test_systematically_different_explanations_are_told_apart() -> None:
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(100, 8, 8))
    shifted = maps.copy()
    shifted[:, :4] += 1.0  # model b always puts more weight on the top half
    labels = np.repeat(np.arange(5), 20)
    assert distinguishability(maps, shifted, labels) == pytest.approx(1.0)
    assert jensen_shannon(maps, shifted) > 0.05 and kolmogorov_smirnov(maps, shifted) > 0.1
    unrelated = rng.normal(size=(100, 8, 8))  # differences by chance only: far from 1
    assert distinguishability(maps, unrelated, labels) < 0.5


def test_consistency_is_one_minus_the_mean_score_and_stays_in_range() -> None:
    assert consistency([0.0, 0.0]) == 1.0 and consistency([1.0, 1.0]) == 0.0
    assert consistency([0.2, 0.4]) == pytest.approx(0.7) and consistency([]) is None
    scores = list(np.random.default_rng(1).uniform(0, 1, 10))
    assert 0.0 <= consistency(scores) <= 1.0


def test_the_permutation_null_is_the_noise_floor_a_real_difference_stands_above() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 40)
    maps = rng.normal(size=(200, 8, 8))
    shifted = maps + np.where(np.arange(8)[:, None] < 4, 1.0, 0.0)  # a real, systematic difference
    assert distinguishability(maps, shifted, labels) > 0.9
    nulls = [distinguishability(maps, shifted, labels, seed=k, shuffled=True) for k in range(5)]
    assert np.mean(nulls) < 0.4  # shuffled copy labels leave nothing systematic to learn
    # maps that differ by chance alone score about their null: S is then the floor, not a difference
    unrelated = rng.normal(size=(200, 8, 8))
    chance = np.mean([distinguishability(maps, unrelated, labels, seed=k) for k in range(5)])
    null = np.mean([distinguishability(maps, unrelated, labels, seed=k, shuffled=True) for k in range(5)])
    assert abs(chance - null) < 0.1 and null > 0.0
    # and the floor falls with more images per class
    many = np.repeat(np.arange(5), 400)
    big, other = rng.normal(size=(2000, 8, 8)), rng.normal(size=(2000, 8, 8))
    assert distinguishability(big, other, many, shuffled=True) < null


def test_the_interval_of_c_brackets_c_and_narrows_when_pairs_agree() -> None:
    spread = [0.1, 0.3, 0.2, 0.5, 0.05, 0.25]
    lo, hi = consistency_interval(spread)
    assert lo < consistency(spread) < hi and 0.0 <= lo and hi <= 1.0
    tight = consistency_interval([0.2, 0.21, 0.19, 0.2, 0.2, 0.2])
    assert tight[1] - tight[0] < (hi - lo) / 5
    assert consistency_interval([0.3]) is None and consistency_interval(spread) == consistency_interval(spread)


def test_too_few_images_per_class_is_an_error() -> None:
    with pytest.raises(ValueError, match="n_per_class"):
        distinguishability(np.zeros((2, 4)), np.ones((2, 4)), np.array([0, 1]))
