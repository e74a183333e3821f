"""The model-randomisation sanity check (Adebayo et al., 2018): a method whose maps look the same for a
trained model and for the same architecture with random weights is not explaining the model."""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import spearmanr


def rank_similarity(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over images of the Spearman rank correlation between |a| and |b| (constant maps are skipped)."""
    values = []
    for x, y in zip(a.flatten(1).abs().numpy(), b.flatten(1).abs().numpy()):
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            continue
        values.append(spearmanr(x, y).statistic)
    return float(np.mean(values)) if values else float("nan")
