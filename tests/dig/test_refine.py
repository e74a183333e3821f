"""Tracing found areas sideways, on a pool whose disagreement region is known exactly: the band
0.3 < x0 <= 0.55 of the plane, where Threshold(0.3) and Threshold(0.55) part ways."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.dig.test_search import Threshold, plane
from xai_cli.dig.pool import ModelPool, unanimous
from xai_cli.dig.refine import data_spacing, trace_areas
from xai_cli.dig.search import search


def band_setting() -> tuple[ModelPool, torch.Tensor, torch.Tensor]:
    """Short segments at x0 in [0, 0.2] every 0.05 in x1 (the data's spacing; none reaches the band) and one
    long segment at x1 = 0.5 that crosses it."""
    y = torch.linspace(0, 1, 21)
    z_from = torch.stack([torch.zeros(21), y], 1)
    z_to = torch.stack([torch.full((21,), 0.2), y], 1)
    z_from = torch.cat([z_from, torch.tensor([[0.0, 0.5]])])
    z_to = torch.cat([z_to, torch.tensor([[1.0, 0.5]])])
    return ModelPool({"a": Threshold(0.3), "b": Threshold(0.55)}), z_from, z_to


def test_tracing_walks_along_the_band_one_data_spacing_per_round() -> None:
    pool, z_from, z_to = band_setting()
    found = search(plane(), pool, z_from, z_to, n_steps=16, eps=1e-3)
    assert len(found.areas) == 1 and found.areas.segment[0] == 21  # only the long segment crosses
    traced = trace_areas(plane(), pool, found.areas, z_from, z_to, rounds=3, n_steps=5, eps=0.01)
    assert traced.rounds == 3 and np.isclose(traced.offset, 0.05, atol=1e-6)
    heights = np.unique(np.round((traced.areas.z_start_in[:, 1] + traced.areas.z_end_in[:, 1]) / 2, 4))
    np.testing.assert_allclose(heights, [0.35, 0.4, 0.45, 0.55, 0.6, 0.65], atol=1e-4)  # both ways, 3 steps
    # every traced area lies in the band, its borders as precise as the traced segments' eps allows
    a = traced.areas
    assert not unanimous(pool.predict(torch.as_tensor(np.concatenate([a.z_start_in, a.z_end_in])))).any()
    length = np.linalg.norm(traced.z_to - traced.z_from, axis=1)[a.segment]
    assert (np.abs(a.z_start_in[:, 0] - 0.3) <= 0.01 * length + 1e-6).all()
    assert (np.abs(a.z_end_in[:, 0] - 0.55) <= 0.01 * length + 1e-6).all()
    # the traced segments run parallel to the one that crossed the band
    np.testing.assert_allclose(traced.z_from[:, 1], traced.z_to[:, 1])


def test_tracing_stops_where_it_has_been_and_can_be_capped_or_off() -> None:
    pool, z_from, z_to = band_setting()
    found = search(plane(), pool, z_from, z_to, n_steps=16, eps=1e-3)
    once = trace_areas(plane(), pool, found.areas, z_from, z_to, rounds=1)
    assert len(once.z_from) == 2  # one step each way, never back over the crossing
    capped = trace_areas(plane(), pool, found.areas, z_from, z_to, rounds=3, per_round=1)
    assert len(capped.z_from) == 3 and len(capped.areas) == 3  # one segment a round
    off = trace_areas(plane(), pool, found.areas, z_from, z_to, rounds=0)
    assert off.rounds == 0 and len(off.areas) == 0 and off.z_from.shape == (0, 2)


def test_the_sideways_step_never_leaves_the_data_where_neighbours_lie_far_apart() -> None:
    # ten dimensions, short segments: neighbouring codes lie much farther apart than segments stray from
    # their ends, so the step is half that reach, not the spacing
    g = torch.Generator().manual_seed(0)
    z_from = torch.randn(300, 10, generator=g)
    z_to = z_from + 0.05 * torch.randn(300, 10, generator=g)
    ends = torch.cat([z_from, z_to])
    step, reach = data_spacing(ends, z_from, z_to)
    assert 0 < reach < 0.2 and step == pytest.approx(reach / 2)
    _, z_from, z_to = band_setting()  # the plane: the spacing of the data, well within reach
    step, reach = data_spacing(torch.cat([z_from, z_to]).unique(dim=0), z_from, z_to)
    assert step == pytest.approx(0.05) and reach > 2 * step
