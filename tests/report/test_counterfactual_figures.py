"""The counterfactual grid: a grey tile wherever a method has no valid counterfactual."""

from __future__ import annotations

import numpy as np
import torch

from xai_cli.report.counterfactual_figures import counterfactual_grid


def test_missing_or_invalid_counterfactuals_are_grey_tiles_and_valid_ones_are_drawn() -> None:
    x = torch.rand(2, 1, 5, 5)
    cf = x.clone()
    cf[0, 0, 2, 2] = 1.0 - cf[0, 0, 2, 2]
    results = {"found": (cf, np.array([True, False]), ["3 (0.90)", "5 (0.60)"]),
               "not_applicable": (None, np.zeros(2, bool), [])}
    fig = counterfactual_grid(x, ["#0", "#1"], results, "t")
    axes = np.array(fig.axes).reshape(2, 5)  # input, then (counterfactual, x' − x) per method

    def pixels(ax: object) -> np.ndarray:
        return np.asarray(ax.get_images()[0].get_array())  # type: ignore[attr-defined]

    np.testing.assert_allclose(pixels(axes[0, 1]), cf[0, 0].numpy())  # row 0: valid, drawn
    diff = pixels(axes[0, 2])
    assert np.count_nonzero(diff) == 1 and diff[2, 2] != 0  # only the changed pixel
    for ax in (axes[1, 1], axes[1, 2], *axes[:, 3], *axes[:, 4]):  # invalid, and a method that did not apply
        assert np.all(pixels(ax) == 0.8)
    assert axes[1, 1].get_xlabel() == "none found" and axes[0, 3].get_xlabel() == "n/a"
