"""How realistic visited points are: distance to the nearest real training instance.

Reported as a root-mean-square difference per feature (per pixel on images), so numbers compare across
image sizes; real test images give the scale of "realistic". A point on a segment is compared with the
training set minus the segment's own two ends: a pixel cross-fade at t = 0.1 is 90 % one training
image, which says nothing about whether it looks like a real input.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch


def nearest_distance(points: torch.Tensor, reference: torch.Tensor, exclude: np.ndarray | None = None,
                     chunk: int = 512) -> np.ndarray:
    """(P,) RMS distance from each point to its nearest reference instance, skipping `exclude[p]` (P, k) indices."""
    p = points.reshape(len(points), -1).float()
    r = reference.reshape(len(reference), -1).float()
    out = []
    for i in range(0, len(p), chunk):
        d = torch.cdist(p[i : i + chunk], r)
        if exclude is not None:
            d.scatter_(1, torch.as_tensor(exclude[i : i + chunk], dtype=torch.int64), float("inf"))
        out.append(d.min(dim=1).values)
    return (torch.cat(out) / p.shape[1] ** 0.5).numpy() if out else np.zeros(0)


def reconstruction_error(points: torch.Tensor, encode: Callable[[torch.Tensor], torch.Tensor],
                         decode: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
    """(P,) RMS per feature between points and their VAE reconstructions: distance to the learned manifold."""
    recon = decode(encode(points))
    return ((points - recon).reshape(len(points), -1).pow(2).mean(1).sqrt()).numpy()


def describe(distances: np.ndarray) -> dict[str, float]:
    return {"mean": float(distances.mean()), "median": float(np.median(distances)), "n": int(len(distances))}
