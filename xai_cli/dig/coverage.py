"""How much of the disagreement a search found: each point's distance to the nearest found area.

An area counts as the segment from its first to its last disagreeing point (as in the DIG paper's
evaluation); a point is covered at δ when some area passes within δ of it.
"""

from __future__ import annotations

import numpy as np


def distance_to_segments(points: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Each point's distance to the nearest of the segments [a_i, b_i] (inf when there are none)."""
    points, a, b = (np.asarray(v, dtype=np.float64) for v in (points, a, b))
    best = np.full(len(points), np.inf)
    ab = b - a
    length2 = np.maximum((ab**2).sum(1), 1e-12)
    for start in range(0, len(a), chunk):
        sa, sab, sl = a[start : start + chunk], ab[start : start + chunk], length2[start : start + chunk]
        t = np.clip(((points[:, None, :] - sa[None]) * sab[None]).sum(-1) / sl[None], 0.0, 1.0)
        nearest = sa[None] + t[..., None] * sab[None]
        best = np.minimum(best, np.sqrt(((points[:, None, :] - nearest) ** 2).sum(-1)).min(1))
    return best


def coverage(points: np.ndarray, a: np.ndarray, b: np.ndarray, deltas: tuple[float, ...]) -> list[float]:
    """The share of `points` within each δ of an area [a_i, b_i]."""
    if not len(points):
        return [float("nan")] * len(deltas)
    distance = distance_to_segments(points, a, b)
    return [float((distance <= d).mean()) for d in deltas]
