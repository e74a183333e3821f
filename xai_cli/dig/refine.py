"""Adaptive refinement: spend further queries where disagreement was found, tracing each area sideways.

Counterfactual segments cross a region of disagreement at a few places; the region itself (in two
dimensions a band between two decision boundaries, in more a thin shell) extends sideways from each
crossing. Each round takes the areas the previous round found and searches short segments parallel to the
one that crossed, shifted sideways by `offset` in a random direction orthogonal to it (both ways), so the
search walks along the region one step per round. A new segment is searched only if its centre lies at
least `offset / 2` from every centre tried so far (a traced stretch is not traced again) and no farther
from the training data than the counterfactual segments' own points go (the search stays where the data
is). The original DIG refines by a graph over found points, one model call per point; this spends its
queries the same way, where disagreement is, but every round is one batched `search`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from xai_cli.dig.pool import ModelPool
from xai_cli.dig.search import Areas, Space, join_areas, search
from xai_cli.dig.space import interpolate


@dataclass
class Traced:
    """The areas found by tracing; their `segment` rows index `z_from`/`z_to`, the traced segments."""

    areas: Areas
    z_from: np.ndarray  # (S, D)
    z_to: np.ndarray    # (S, D)
    rounds: int         # rounds run (fewer than asked when a round finds nothing new)
    offset: float       # the sideways step

    def arrays(self) -> dict[str, np.ndarray]:
        return {**self.areas.arrays(), "segment_from": self.z_from, "segment_to": self.z_to}


def _nearest(points: np.ndarray, to: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Each point's distance to the nearest row of `to`."""
    if not len(to):
        return np.full(len(points), np.inf)
    ref = torch.as_tensor(to, dtype=torch.float32)
    out = [torch.cdist(torch.as_tensor(points[i : i + chunk], dtype=torch.float32), ref).min(1).values
           for i in range(0, len(points), chunk)]
    return torch.cat(out).numpy() if out else np.zeros(0)


def _middles(areas: Areas) -> np.ndarray:
    return (areas.z_start_in + areas.z_end_in) / 2


def _nothing(like: Areas, dim: int, offset: float) -> Traced:
    """No traced areas (shaped like `like`'s) and no traced segments."""
    none = np.zeros((0, dim), np.float32)
    return Traced(Areas(**{k: v[:0] for k, v in like.arrays().items()}), none, none, 0, offset)


def data_spacing(ends: torch.Tensor, z_from: torch.Tensor, z_to: torch.Tensor) -> tuple[float, float]:
    """The sideways step and how far from the data tracing may go.

    Reach: the 0.99 quantile of the distance from points along the counterfactual segments to the nearest
    end. Step: the median distance between neighbouring training codes (the segments' ends), but at most
    half the reach: in a latent space of ten or more dimensions neighbours lie farther apart than segments
    stray from their ends, and a full step would leave the data at once.
    """
    ends = ends.float()
    d = torch.cdist(ends, ends)
    d.fill_diagonal_(float("inf"))
    spacing = float(d.min(1).values.median())
    probe = interpolate(z_from[:2000].float(), z_to[:2000].float(), torch.linspace(0, 1, 9)).reshape(-1, ends.shape[1])
    reach = float(np.quantile(_nearest(probe.numpy(), ends.numpy()), 0.99))
    return min(spacing, reach / 2), reach


def trace_areas(space: Space, pool: ModelPool, found: Areas, z_from: torch.Tensor, z_to: torch.Tensor,
                rounds: int, per_round: int = 2000, n_steps: int = 5, eps: float = 0.01,
                seed: int = 0) -> Traced:
    """`rounds` rounds of sideways tracing from the areas `found` on the segments [z_from, z_to].

    `per_round` caps the segments one round searches; `n_steps` and `eps` are the grid and border precision
    (in t) of each short traced segment: coarser than the counterfactual segments' since the segment is
    short and the area's place on it is known.
    """
    if rounds <= 0 or not len(found):
        return _nothing(found, z_from.shape[1], 0.0)
    rng = np.random.default_rng(seed)
    ends = torch.cat([z_from, z_to]).float().unique(dim=0)
    offset, reach = data_spacing(ends, z_from, z_to)

    parts: list[Areas] = []
    offsets: list[int] = []
    seg_from: list[np.ndarray] = []
    seg_to: list[np.ndarray] = []
    frontier, frontier_from, frontier_to = found, z_from.float().numpy(), z_to.float().numpy()
    tried = _middles(found)
    total, done = 0, 0
    for _ in range(rounds):
        middle = _middles(frontier)
        length = np.linalg.norm(frontier.z_end_in - frontier.z_start_in, axis=1)
        rows = frontier.segment  # an area may be a single point: the direction is its segment's
        direction = (frontier_to[rows] - frontier_from[rows]).astype(np.float64)
        direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-12)
        side = rng.standard_normal(direction.shape)
        side -= (side * direction).sum(1, keepdims=True) * direction  # orthogonal to the segment
        side /= np.maximum(np.linalg.norm(side, axis=1, keepdims=True), 1e-12)
        centres = np.concatenate([middle + offset * side, middle - offset * side])
        along = np.concatenate([direction, direction])
        half = np.concatenate([length, length]) / 2 + 3 * offset  # room for the area to shift or widen
        keep = np.flatnonzero((_nearest(centres, tried) >= offset / 2) & (_nearest(centres, ends.numpy()) <= reach))
        if len(keep) > per_round:
            keep = np.sort(rng.choice(keep, per_round, replace=False))
        if not len(keep):
            break
        centres, along, half = centres[keep], along[keep], half[keep, None]
        a = (centres - half * along).astype(np.float32)
        b = (centres + half * along).astype(np.float32)
        result = search(space, pool, torch.as_tensor(a), torch.as_tensor(b), n_steps, eps)
        parts.append(result.areas)
        offsets.append(total)
        seg_from.append(a)
        seg_to.append(b)
        total += len(a)
        done += 1
        # a centre tried is known even when nothing was found there: the search does not come back to it
        tried = np.concatenate([tried, centres, _middles(result.areas)])
        frontier, frontier_from, frontier_to = result.areas, a, b
        if not len(frontier):
            break
    if not parts:
        return _nothing(found, z_from.shape[1], offset)
    return Traced(join_areas(parts, offsets), np.concatenate(seg_from), np.concatenate(seg_to), done, offset)
