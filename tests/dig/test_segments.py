"""Anchors and counterfactual segments."""

from __future__ import annotations

import numpy as np
import torch

from xai_cli.dig.realism import nearest_distance
from xai_cli.dig.segments import choose_anchors, counterfactual_segments


def test_neighbours_are_the_nearest_instances_predicted_otherwise() -> None:
    rng = np.random.default_rng(0)
    codes = torch.as_tensor(rng.normal(size=(300, 3)), dtype=torch.float32)
    preds = np.stack([rng.integers(0, 3, 300), rng.integers(0, 3, 300)])
    anchors = np.arange(0, 300, 7)
    pairs = counterfactual_segments(codes, preds, anchors, k=4, chunk=16)
    for a in anchors:
        differs = (preds != preds[:, [a]]).any(0)
        d = torch.cdist(codes[[a]], codes)[0].numpy()
        expected = set(np.argsort(np.where(differs, d, np.inf))[:4].tolist())
        mine = {int(j) for i, j in pairs if i == a} | {int(i) for i, j in pairs if j == a and i in anchors}
        assert expected <= mine  # every nearest counterfactual neighbour is joined (once, in either direction)
    assert all((preds[:, i] != preds[:, j]).any() for i, j in pairs)
    assert len({tuple(sorted(p)) for p in pairs.tolist()}) == len(pairs)  # no pair twice


def test_no_segments_when_every_prediction_is_the_same() -> None:
    preds = np.zeros((2, 50), dtype=int)
    assert counterfactual_segments(torch.rand(50, 2), preds, np.arange(10), k=3).shape == (0, 2)


def test_uncertain_anchors_put_disagreements_first_then_low_confidence() -> None:
    preds = np.array([[0, 1, 1, 2, 0, 0], [0, 1, 2, 2, 1, 0]])  # disagreements at 2 and 4
    confidence = np.array([0.9, 0.5, 0.99, 0.6, 0.95, 0.7])
    assert choose_anchors(preds, confidence, 3, "uncertain", 0).tolist() == [1, 2, 4]
    r1, r2 = choose_anchors(preds, confidence, 3, "random", 1), choose_anchors(preds, confidence, 3, "random", 1)
    assert r1.tolist() == r2.tolist() and len(set(r1.tolist())) == 3


def test_nearest_distance_skips_the_excluded_instances() -> None:
    reference = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    points = torch.tensor([[0.1, 0.0], [0.9, 0.0]])
    np.testing.assert_allclose(nearest_distance(points, reference) * 2**0.5, [0.1, 0.1], atol=1e-6)
    np.testing.assert_allclose(nearest_distance(points, reference, np.array([[0, 1], [1, 2]])) * 2**0.5, [2.9, 0.9],
                               atol=1e-6)
