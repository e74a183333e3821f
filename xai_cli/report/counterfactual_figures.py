"""The counterfactual grid: each image, then per method the counterfactual and what changed."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from xai_cli.report.figures import plt, show_image


def _off(ax: plt.Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def counterfactual_grid(x: torch.Tensor, captions: Sequence[str], results: Mapping[str, tuple[torch.Tensor | None,
                        np.ndarray, Sequence[str]]], title: str) -> Figure:
    """Columns: the input, then per method (counterfactual, x' − x). `results[m]` = (counterfactuals or None,
    valid (N,) bool, captions); an invalid or missing counterfactual is a grey tile."""
    n, methods = len(x), list(results)
    fig, axes = plt.subplots(n, 1 + 2 * len(methods), figsize=(1.2 * (1 + 2 * len(methods)) + 0.5, 1.35 * n + 0.6),
                             squeeze=False, layout="constrained")
    for r in range(n):
        show_image(axes[r, 0], x[r])
        axes[r, 0].set_xlabel(captions[r], fontsize=7)
        for c, m in enumerate(methods):
            cf, valid, cf_captions = results[m]
            ax_cf, ax_diff = axes[r, 1 + 2 * c], axes[r, 2 + 2 * c]
            if r == 0:
                ax_cf.set_title(m, fontsize=8)
                ax_diff.set_title("x′ − x", fontsize=8)
            if cf is None or not valid[r]:
                for ax in (ax_cf, ax_diff):
                    ax.imshow(np.full(x[r].shape[-2:], 0.8), cmap="gray", vmin=0, vmax=1)
                ax_cf.set_xlabel("none found" if cf is not None else "n/a", fontsize=7)
            else:
                show_image(ax_cf, cf[r])
                diff = (cf[r] - x[r]).sum(0).numpy()  # what changed, summed over colour channels
                limit = max(float(np.abs(diff).max()), 1e-6)
                ax_diff.imshow(diff, cmap="bwr", norm=TwoSlopeNorm(0.0, -limit, limit))
                ax_cf.set_xlabel(cf_captions[r], fontsize=7)
            _off(ax_cf)
            _off(ax_diff)
        _off(axes[r, 0])
    fig.suptitle(title, fontsize=9)
    return fig
