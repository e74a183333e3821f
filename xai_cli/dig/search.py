"""The discrepancy search: walk every segment on a grid, then bisect every area border, all batched.

A *discrepancy area* on a segment is a maximal run of positions t in [0, 1] where the pool is not
unanimous. The grid (`n_steps` points per segment, one pool query for all segments) finds the runs;
each border between a unanimous and a non-unanimous grid point is then halved `rounds` times, one pool
query per round for every border of every segment together, until the two sides are `eps` apart in t.
Areas narrower than the grid step can be missed: that is the resolution `n_steps` buys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Protocol

import numpy as np
import torch

from xai_cli.dig.pool import ModelPool, unanimous
from xai_cli.dig.space import interpolate


class Space(Protocol):
    def decode(self, z: torch.Tensor) -> torch.Tensor: ...


@dataclass
class Areas:
    """One row per discrepancy area. Borders: `*_in` just inside the area, `*_out` just outside.

    An area that reaches a segment's end has no outside point there: its `t_*_out` is NaN, its border
    point NaN and its predictions -1.
    """

    segment: np.ndarray          # (A,) row of the segment in the search's input
    t_start: np.ndarray          # (A,) = t_start_in
    t_end: np.ndarray            # (A,) = t_end_in
    t_start_out: np.ndarray      # (A,)
    t_end_out: np.ndarray        # (A,)
    z_start_in: np.ndarray       # (A, D)
    z_start_out: np.ndarray      # (A, D)
    z_end_in: np.ndarray         # (A, D)
    z_end_out: np.ndarray        # (A, D)
    pred_start_in: np.ndarray    # (A, n_models)
    pred_start_out: np.ndarray   # (A, n_models)
    pred_end_in: np.ndarray      # (A, n_models)
    pred_end_out: np.ndarray     # (A, n_models)

    def __len__(self) -> int:
        return len(self.segment)

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def join_areas(parts: list[Areas], offsets: list[int] | None = None) -> Areas:
    """One Areas of several searches, each part's segment rows shifted by its offset (default 0)."""
    offsets = offsets or [0] * len(parts)
    joined = {name: np.concatenate([getattr(p, name) for p in parts]) for name in parts[0].arrays()}
    joined["segment"] = np.concatenate([p.segment + o for p, o in zip(parts, offsets)]).astype(np.int64)
    return Areas(**joined)


@dataclass
class SearchResult:
    areas: Areas
    t_grid: np.ndarray          # (n_steps,)
    grid_disagrees: np.ndarray  # (S, n_steps) True where the pool is not unanimous
    rounds: int                 # bisection rounds run


def _query(space: Space, pool: ModelPool, z: torch.Tensor, description: str | None = None) -> np.ndarray:
    return pool.predict_decoded(z, space.decode, description=description)


def bisection_rounds(n_steps: int, eps: float) -> int:
    """Halvings that shrink one grid step to at most eps."""
    return max(0, math.ceil(math.log2((1.0 / (n_steps - 1)) / eps))) if eps > 0 else 0


def search(space: Space, pool: ModelPool, z_from: torch.Tensor, z_to: torch.Tensor, n_steps: int = 32,
           eps: float = 1e-3) -> SearchResult:
    """Discrepancy areas along the segments [z_from[s], z_to[s]], each area's borders to within eps in t."""
    if n_steps < 2:
        raise ValueError("n_steps must be at least 2 (the two ends)")
    z_from, z_to = z_from.float(), z_to.float()
    n_seg, dim = z_from.shape
    t_grid = torch.linspace(0.0, 1.0, n_steps)
    preds = _query(space, pool, interpolate(z_from, z_to, t_grid).reshape(-1, dim),
                   f"walking {n_seg} segments").reshape(len(pool), n_seg, n_steps)
    disagrees = ~unanimous(preds.reshape(len(pool), -1)).reshape(n_seg, n_steps)

    # runs of disagreement: starts where the previous point agrees, ends where the next one does
    padded = np.pad(disagrees, ((0, 0), (1, 1)))
    seg_s, first = np.nonzero(padded[:, 1:-1] & ~padded[:, :-2])
    seg_e, last = np.nonzero(padded[:, 1:-1] & ~padded[:, 2:])  # same row-major order: pairs up with starts
    t = t_grid.numpy()

    # borders to refine: [starts that are not at t=0] + [ends that are not at t=1]
    open_start, open_end = first > 0, last < n_steps - 1
    b_seg = np.concatenate([seg_s[open_start], seg_e[open_end]])
    t_in = np.concatenate([t[first[open_start]], t[last[open_end]]]).astype(np.float64)
    t_out = np.concatenate([t[first[open_start] - 1], t[last[open_end] + 1]]).astype(np.float64)
    p_in = np.concatenate([preds[:, seg_s[open_start], first[open_start]], preds[:, seg_e[open_end], last[open_end]]], axis=1)
    p_out = np.concatenate([preds[:, seg_s[open_start], first[open_start] - 1],
                            preds[:, seg_e[open_end], last[open_end] + 1]], axis=1)

    rounds = bisection_rounds(n_steps, eps) if len(b_seg) else 0
    seg_index = torch.as_tensor(b_seg)
    for _ in range(rounds):  # each round is one small query; the grid walk above is the long part
        mid = (t_in + t_out) / 2
        p_mid = _query(space, pool, interpolate(z_from[seg_index], z_to[seg_index],
                                                torch.as_tensor(mid, dtype=torch.float32)[:, None])[:, 0])
        inside = ~unanimous(p_mid)
        t_in = np.where(inside, mid, t_in)
        t_out = np.where(inside, t_out, mid)
        p_in = np.where(inside[None], p_mid, p_in)
        p_out = np.where(inside[None], p_out, p_mid)

    n_open_start = int(open_start.sum())
    areas = _assemble(z_from, z_to, seg_s, first, last, t, open_start, open_end, n_open_start,
                      t_in, t_out, p_in, p_out, preds)
    return SearchResult(areas, t, disagrees, rounds)


def _assemble(z_from: torch.Tensor, z_to: torch.Tensor, seg: np.ndarray, first: np.ndarray, last: np.ndarray,
              t: np.ndarray, open_start: np.ndarray, open_end: np.ndarray, n_open_start: int,
              t_in: np.ndarray, t_out: np.ndarray, p_in: np.ndarray, p_out: np.ndarray,
              grid_preds: np.ndarray) -> Areas:
    """One row per area from the refined borders; closed ends (t = 0 or 1) keep their grid values."""
    n_areas, n_models = len(seg), grid_preds.shape[0]
    t_start = np.zeros(n_areas)
    t_end = np.ones(n_areas)
    t_start_out = np.full(n_areas, np.nan)
    t_end_out = np.full(n_areas, np.nan)
    pred = {k: np.full((n_areas, n_models), -1, dtype=np.int64) for k in ("si", "so", "ei", "eo")}
    pred["si"][:] = grid_preds[:, seg, first].T
    pred["ei"][:] = grid_preds[:, seg, last].T

    t_start[open_start], t_start_out[open_start] = t_in[:n_open_start], t_out[:n_open_start]
    pred["si"][open_start], pred["so"][open_start] = p_in[:, :n_open_start].T, p_out[:, :n_open_start].T
    t_end[open_end], t_end_out[open_end] = t_in[n_open_start:], t_out[n_open_start:]
    pred["ei"][open_end], pred["eo"][open_end] = p_in[:, n_open_start:].T, p_out[:, n_open_start:].T
    t_start[~open_start] = t[first[~open_start]]  # = 0
    t_end[~open_end] = t[last[~open_end]]          # = 1

    def point(ts: np.ndarray) -> np.ndarray:
        known = np.isfinite(ts)
        out = np.full((n_areas, z_from.shape[1]), np.nan, dtype=np.float32)
        if known.any():
            s = torch.as_tensor(seg[known])
            out[known] = interpolate(z_from[s], z_to[s], torch.as_tensor(ts[known], dtype=torch.float32)[:, None])[:, 0].numpy()
        return out

    return Areas(segment=seg.astype(np.int64), t_start=t_start, t_end=t_end, t_start_out=t_start_out,
                 t_end_out=t_end_out, z_start_in=point(t_start), z_start_out=point(t_start_out),
                 z_end_in=point(t_end), z_end_out=point(t_end_out), pred_start_in=pred["si"],
                 pred_start_out=pred["so"], pred_end_in=pred["ei"], pred_end_out=pred["eo"])


def summary(areas: Areas, n_segments: int) -> dict[str, Any]:
    lengths = areas.t_end - areas.t_start
    return {
        "n_segments": int(n_segments),
        "n_segments_with_discrepancy": int(len(np.unique(areas.segment))),
        "n_areas": int(len(areas)),
        "areas_per_1000_segments": 1000.0 * len(areas) / n_segments if n_segments else 0.0,
        "area_length_t": {"mean": float(lengths.mean()) if len(lengths) else None,
                          "median": float(np.median(lengths)) if len(lengths) else None},
    }
