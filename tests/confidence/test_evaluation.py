"""The MSP-grid evaluation, on stand-in generators whose classifier MSP is known in closed form."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xai_cli.confidence.evaluation import evaluate_grid, msp_grid

GRID = np.linspace(0.5, 1.0, 6)


def echo(z: torch.Tensor, labels: torch.Tensor, msp: torch.Tensor) -> torch.Tensor:
    """A 'generator' whose sample carries its own condition: (label, msp)."""
    return torch.stack([labels.float(), msp], 1)


def probs_of(label: np.ndarray, msp: np.ndarray, num_classes: int = 3) -> np.ndarray:
    """Class probabilities with argmax `label` and maximum `msp` (the rest spread evenly)."""
    out = np.tile(((1 - msp) / (num_classes - 1))[:, None], (1, num_classes))
    out[np.arange(len(label)), label] = msp
    return out


def test_a_generator_that_obeys_exactly_scores_perfectly() -> None:
    classify = lambda x: probs_of(x[:, 0].long().numpy(), x[:, 1].numpy())  # noqa: E731
    summary, samples = evaluate_grid(echo, classify, latent_dim=4, num_classes=3, grid=GRID, n_per_point=5, seed=0)
    assert summary["msp_pearson"] == pytest.approx(1.0) and summary["msp_spearman"] == pytest.approx(1.0)
    assert summary["msp_mae"] == pytest.approx(0.0, abs=1e-6) and summary["class_agreement"] == 1.0
    assert summary["n_samples"] == 3 * 6 * 5 and len(summary["per_point"]) == 6
    assert set(samples) == {"msp_in", "msp_out", "label_in", "label_out"}


def test_a_known_shrinkage_and_a_known_share_of_wrong_classes_are_measured() -> None:
    # MSP out = 0.5 + 0.5 (MSP in − 0.5): MAE = mean of 0.5 (MSP in − 0.5) over the grid; and every sample of
    # class 2 comes out as class 0: agreement 2/3
    def classify(x: torch.Tensor) -> np.ndarray:
        label = x[:, 0].long().numpy()
        return probs_of(np.where(label == 2, 0, label), 0.5 + 0.5 * (x[:, 1].numpy() - 0.5))

    summary, _ = evaluate_grid(echo, classify, latent_dim=4, num_classes=3, grid=GRID, n_per_point=4, seed=0)
    assert summary["msp_mae"] == pytest.approx(float(np.mean(0.5 * (GRID - 0.5))), rel=1e-5)
    assert summary["msp_pearson"] == pytest.approx(1.0)  # a linear map keeps the correlation
    assert summary["class_agreement"] == pytest.approx(2 / 3)
    top = summary["per_point"][-1]
    assert top["msp_in"] == 1.0 and top["msp_out_mean"] == pytest.approx(0.75, rel=1e-5)


def test_a_generator_that_ignores_its_condition_has_no_correlation() -> None:
    constant = lambda x: probs_of(np.zeros(len(x), dtype=int), np.full(len(x), 0.8))  # noqa: E731
    summary, _ = evaluate_grid(echo, constant, latent_dim=4, num_classes=3, grid=GRID, n_per_point=3, seed=0)
    assert summary["msp_pearson"] is None and summary["msp_spearman"] is None  # undefined, not 0 or NaN


def test_the_grid_runs_from_its_low_end_to_one_but_never_starts_at_chance() -> None:
    np.testing.assert_allclose(msp_grid(10, 3, 0.4), [0.4, 0.7, 1.0])
    assert msp_grid(2, 5, 0.4)[0] == pytest.approx(0.55)  # two classes: an MSP of 0.5 names no class
