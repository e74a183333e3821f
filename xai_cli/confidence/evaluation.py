"""Does the generator obey its MSP condition? Generate on a grid of (class, MSP) conditions, classify.

For every class and every MSP on the grid, `n_per_point` samples from fixed latents (the same latents at
every grid point, so points differ by their condition only); the frozen classifier's MSP on each sample is
compared with the MSP asked for, and its class with the class asked for.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from scipy import stats

# (latents (N, D), labels (N,), msp (N,)) -> samples; samples -> class probabilities (N, K)
Generate = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
Classify = Callable[[torch.Tensor], np.ndarray]


def msp_grid(num_classes: int, points: int, low: float) -> np.ndarray:
    """`points` MSP values from `low` to 1.0, starting no lower than 0.05 above chance (1/K): an MSP at
    chance names no class, so class agreement there means nothing."""
    return np.linspace(max(float(low), 1.0 / num_classes + 0.05), 1.0, int(points))


def evaluate_grid(generate: Generate, classify: Classify, latent_dim: int, num_classes: int, grid: np.ndarray,
                  n_per_point: int, seed: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Summary metrics and per-sample arrays (msp_in, msp_out, label_in, label_out)."""
    z = torch.randn(n_per_point, latent_dim, generator=torch.Generator().manual_seed(seed))
    msp_in, msp_out, label_in, label_out = [], [], [], []
    for k in range(num_classes):
        for m in grid:
            labels = torch.full((n_per_point,), k, dtype=torch.long)
            probs = classify(generate(z, labels, torch.full((n_per_point,), float(m))))
            msp_in.append(np.full(n_per_point, m))
            label_in.append(np.full(n_per_point, k))
            msp_out.append(probs.max(1))
            label_out.append(probs.argmax(1))
    samples = {"msp_in": np.concatenate(msp_in), "msp_out": np.concatenate(msp_out),
               "label_in": np.concatenate(label_in), "label_out": np.concatenate(label_out)}
    return summarise(samples, grid), samples


def summarise(samples: dict[str, np.ndarray], grid: np.ndarray) -> dict[str, Any]:
    msp_in, msp_out = samples["msp_in"], samples["msp_out"]
    agree = samples["label_out"] == samples["label_in"]
    constant = np.ptp(msp_out) == 0 or np.ptp(msp_in) == 0  # correlations are undefined then
    per_point = [{"msp_in": float(m), "msp_out_mean": float(msp_out[msp_in == m].mean()),
                  "msp_out_std": float(msp_out[msp_in == m].std()),
                  "class_agreement": float(agree[msp_in == m].mean())} for m in grid]
    return {
        "msp_pearson": None if constant else float(stats.pearsonr(msp_in, msp_out)[0]),
        "msp_spearman": None if constant else float(stats.spearmanr(msp_in, msp_out)[0]),
        "msp_mae": float(np.abs(msp_in - msp_out).mean()),
        "class_agreement": float(agree.mean()),
        "n_samples": int(len(msp_in)),
        "grid": [float(m) for m in grid],
        "per_point": per_point,
    }
