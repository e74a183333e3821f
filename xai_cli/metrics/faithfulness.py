"""Deletion and insertion curves (Petsiuk et al., RISE): how fast the class probability falls as the most
important pixels are removed, and rises as they are put back. Lower deletion AUC and higher insertion AUC
mean more faithful attributions; a random pixel order gives the reference."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

ProbabilityFn = Callable[[torch.Tensor], np.ndarray]


def _orders(attributions: torch.Tensor, random_order: bool, seed: int) -> torch.Tensor:
    flat = attributions.flatten(1)
    if random_order:
        gen = torch.Generator().manual_seed(seed)
        return torch.stack([torch.randperm(flat.shape[1], generator=gen) for _ in range(len(flat))])
    return torch.argsort(flat, dim=1, descending=True, stable=True)


def deletion_insertion(
    predict_proba: ProbabilityFn,
    x: torch.Tensor,
    attributions: torch.Tensor,
    target: torch.Tensor,
    steps: int = 20,
    baseline: float = 0.0,
    random_order: bool = False,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-image (deletion AUC, insertion AUC) of the target-class probability over the share of pixels moved.

    Pixels are ranked by attribution (all channels of a location move together); at each of `steps`+1
    points the top-k locations are set to `baseline` (deletion) or copied onto a baseline image
    (insertion). All perturbed images go to the model in one batched call.
    """
    n, c, h, w = x.shape
    n_pixels = h * w
    order = _orders(attributions, random_order, seed)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(n_pixels).expand(n, -1))  # rank of each pixel, 0 = most important
    ks = torch.linspace(0, n_pixels, steps + 1).round().long()
    moved = (ranks[:, None, :] < ks[None, :, None]).view(n, steps + 1, 1, h, w)  # (n, steps+1, 1, H, W)
    images = x[:, None]
    blank = torch.full_like(images, baseline)
    deleted = torch.where(moved, blank, images)
    inserted = torch.where(moved, images, blank)
    batch = torch.cat([deleted, inserted]).reshape(-1, c, h, w)
    probs = predict_proba(batch).reshape(2, n, steps + 1, -1)
    curve = np.take_along_axis(probs, target.numpy()[None, :, None, None], axis=-1)[..., 0]  # (2, n, steps+1)
    fractions = ks.numpy() / n_pixels
    auc = np.trapezoid(curve, fractions, axis=-1)
    return auc[0], auc[1]
