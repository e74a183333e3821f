"""The batched discrepancy search on pools whose disagreement regions are known exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import make_moons
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from xai_cli.dig.pool import ModelPool, unanimous
from xai_cli.dig.search import bisection_rounds, search
from xai_cli.dig.space import InputSpace


class Threshold:
    """Class 1 where x0 > c: two of these disagree exactly on (c1, c2]."""

    def __init__(self, c: float) -> None:
        self.c = c

    def predict_proba(self, x: torch.Tensor) -> np.ndarray:
        p = (torch.as_tensor(x)[:, 0] > self.c).float()
        return torch.stack([1 - p, p], 1).numpy()


class Band:
    """Class 1 inside a set of x0 intervals: a pool member whose disagreement with Threshold is several runs."""

    def __init__(self, intervals: list[tuple[float, float]]) -> None:
        self.intervals = intervals

    def predict_proba(self, x: torch.Tensor) -> np.ndarray:
        x0 = torch.as_tensor(x)[:, 0]
        p = torch.zeros_like(x0)
        for a, b in self.intervals:
            p = torch.where((x0 > a) & (x0 <= b), 1.0, p)
        return torch.stack([1 - p, p], 1).numpy()


class SklearnModel:
    def __init__(self, estimator: object) -> None:
        self.estimator = estimator

    def predict_proba(self, x: torch.Tensor) -> np.ndarray:
        return self.estimator.predict_proba(torch.as_tensor(x).numpy())


def plane() -> InputSpace:
    space = InputSpace()
    space.input_shape = (2,)
    return space


def test_bisection_finds_a_known_boundary_to_eps() -> None:
    pool = ModelPool({"a": Threshold(0.3), "b": Threshold(0.55)})
    z_from = torch.tensor([[0.0, 0.0], [0.0, 2.0], [1.0, 0.0]])
    z_to = torch.tensor([[1.0, 0.0], [2.0, 2.0], [0.0, 0.0]])  # x0 runs 0→1, 0→2 and back 1→0
    eps = 1e-4
    result = search(plane(), pool, z_from, z_to, n_steps=11, eps=eps)
    a = result.areas
    assert a.segment.tolist() == [0, 1, 2]
    # on segment s, x0 = scale * t (+ offset): the area is x0 in (0.3, 0.55]
    expected = [(0.3, 0.55), (0.15, 0.275), (0.45, 0.7)]
    for k, (lo, hi) in enumerate(expected):
        assert abs(a.t_start[k] - lo) <= eps and abs(a.t_end[k] - hi) <= eps
        assert abs(a.t_start_out[k] - lo) <= eps and abs(a.t_end_out[k] - hi) <= eps
        assert (a.t_start[k] - a.t_start_out[k]) * (a.t_end_out[k] - a.t_end[k]) > 0  # outside points lie outside
    assert result.rounds == bisection_rounds(11, eps) == 10
    # every border point: just inside disagrees, just outside agrees
    assert not unanimous(pool.predict(torch.as_tensor(np.concatenate([a.z_start_in, a.z_end_in])))).any()
    assert unanimous(pool.predict(torch.as_tensor(np.concatenate([a.z_start_out, a.z_end_out])))).all()


def test_areas_touching_the_ends_and_several_per_segment() -> None:
    # b says 1 on (0.2, 0.4] and (0.6, 1.0]; a says 1 nowhere below 2: disagreement exactly where b says 1
    pool = ModelPool({"a": Threshold(2.0), "b": Band([(0.2, 0.4), (0.6, 1.0)])})
    result = search(plane(), pool, torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]]), n_steps=9, eps=1e-3)
    a = result.areas
    assert len(a) == 2 and a.segment.tolist() == [0, 0]
    assert a.t_start[0] == pytest.approx(0.2, abs=1e-3) and a.t_end[0] == pytest.approx(0.4, abs=1e-3)
    assert a.t_start[1] == pytest.approx(0.6, abs=1e-3) and a.t_end[1] == 1.0
    assert np.isnan(a.t_end_out[1]) and np.isnan(a.z_end_out[1]).all() and (a.pred_end_out[1] == -1).all()
    assert a.pred_start_in[0].tolist() == [0, 1] and a.pred_start_out[0].tolist() == [0, 0]


def test_identical_models_yield_no_areas() -> None:
    model = Threshold(0.5)
    pool = ModelPool({"a": model, "b": model})
    result = search(plane(), pool, torch.rand(20, 2), torch.rand(20, 2) + 1, n_steps=16, eps=1e-3)
    assert len(result.areas) == 0 and result.rounds == 0 and not result.grid_disagrees.any()
    assert pool.calls == 1  # the grid walk only


def test_batched_search_equals_a_per_segment_loop_with_far_fewer_calls() -> None:
    x, y = make_moons(600, noise=0.3, random_state=0)
    pool = ModelPool({"logreg": SklearnModel(LogisticRegression().fit(x, y)),
                      "knn": SklearnModel(KNeighborsClassifier(15).fit(x, y))})
    rng = np.random.default_rng(0)
    z_from = torch.as_tensor(x[rng.choice(600, 60)], dtype=torch.float32)
    z_to = torch.as_tensor(x[rng.choice(600, 60)], dtype=torch.float32)
    batched = search(plane(), pool, z_from, z_to, n_steps=16, eps=1e-3)
    batched_calls = pool.calls
    assert len(batched.areas) > 5
    pool.calls = 0
    loop = [search(plane(), pool, z_from[s : s + 1], z_to[s : s + 1], n_steps=16, eps=1e-3) for s in range(60)]
    assert pool.calls > 5 * batched_calls
    starts = np.concatenate([r.areas.t_start for r in loop])
    ends = np.concatenate([r.areas.t_end for r in loop])
    segments = np.concatenate([np.full(len(r.areas), s) for s, r in enumerate(loop)])
    np.testing.assert_array_equal(segments, batched.areas.segment)
    np.testing.assert_allclose(starts, batched.areas.t_start)
    np.testing.assert_allclose(ends, batched.areas.t_end)
    # and the borders hold up when queried again
    a = batched.areas
    assert not unanimous(pool.predict(torch.as_tensor(np.concatenate([a.z_start_in, a.z_end_in])))).any()
    outside = np.concatenate([a.z_start_out, a.z_end_out])
    assert unanimous(pool.predict(torch.as_tensor(outside[np.isfinite(outside).all(1)]))).all()


def test_pool_needs_two_models() -> None:
    with pytest.raises(ValueError, match="at least two"):
        ModelPool({"a": Threshold(0.5)})
