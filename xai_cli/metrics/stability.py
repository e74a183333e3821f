"""Stability of an explanation under input noise too small to see: a local Lipschitz estimate
(Alvarez-Melis & Jaakkola, 2018). The seed article's point: LIME's maps change under such noise."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

ExplainFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _unit(maps: torch.Tensor) -> torch.Tensor:
    flat = maps.flatten(1)
    return flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)


def local_lipschitz(explain: ExplainFn, x: torch.Tensor, target: torch.Tensor, n_samples: int = 4,
                    sigma: float = 0.01, seed: int = 0) -> np.ndarray:
    """Per image: max over `n_samples` Gaussian perturbations of ||e(x) - e(x')|| / ||x - x'||.

    Attributions are scaled to unit L2 norm first, so methods of different scale compare; lower is stabler.
    """
    gen = torch.Generator().manual_seed(seed)
    reference = _unit(explain(x, target))
    worst = torch.zeros(len(x))
    for _ in range(n_samples):
        noise = sigma * torch.randn(x.shape, generator=gen)
        moved = _unit(explain(x + noise, target))
        ratio = (reference - moved).norm(dim=1) / noise.flatten(1).norm(dim=1)
        worst = torch.maximum(worst, ratio)
    return worst.numpy()
