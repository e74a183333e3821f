"""Attribution figures: red is evidence for the explained class, blue against, the digit drawn faintly.

shap's own image plot reads inverted on white-on-black digits; here the colormap is diverging, centred on
0 with symmetric limits per map, and the input is drawn as a contour so the colours keep their meaning.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from xai_cli.report.figures import plt, show_image

CMAP = "bwr"  # blue (against) - white (0) - red (for)


def _greyscale(image: torch.Tensor) -> np.ndarray:
    return image.mean(0).numpy() if image.ndim == 3 else image.numpy()


def attribution_grid(images: torch.Tensor, maps: Mapping[str, torch.Tensor | None], row_titles: Sequence[str],
                     title: str, max_rows: int = 16) -> Figure:
    """Rows = images, columns = the input then one map per explainer (None: a grey 'n/a' column)."""
    n = min(len(images), max_rows)
    names = list(maps)
    fig, axes = plt.subplots(n, len(names) + 1, figsize=(1.35 * (len(names) + 1) + 0.8, 1.45 * n + 0.6),
                             squeeze=False, layout="constrained")
    for r in range(n):
        grey = _greyscale(images[r])  # the outline drawn over each map
        show_image(axes[r, 0], images[r])
        axes[r, 0].set_title(row_titles[r], fontsize=7)
        for c, name in enumerate(names, start=1):
            ax = axes[r, c]
            attr = maps[name]
            if attr is None:
                ax.imshow(np.full_like(grey, 0.85), cmap="gray", vmin=0, vmax=1)
                ax.text(grey.shape[1] / 2, grey.shape[0] / 2, "n/a", ha="center", va="center", fontsize=8)
            else:
                a = attr[r].numpy()
                limit = float(np.percentile(np.abs(a), 99.5)) or 1e-12
                ax.imshow(a, cmap=CMAP, norm=TwoSlopeNorm(0.0, -limit, limit))
                ax.contour(grey, levels=[0.5], colors="k", linewidths=0.4, alpha=0.45)
            if r == 0:
                ax.set_title(name, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    sm = plt.cm.ScalarMappable(cmap=CMAP, norm=TwoSlopeNorm(0.0, -1.0, 1.0))
    bar = fig.colorbar(sm, ax=axes, fraction=0.02, pad=0.01, shrink=min(1.0, 6.0 / n))
    bar.set_ticks([-1, 0, 1], labels=["against", "0", "for"])
    fig.suptitle(title, fontsize=10)
    return fig


def time_vs_faithfulness(points: Mapping[str, Mapping[str, tuple[float, float]]]) -> Figure:
    """Time per image (log) against deletion AUC: colour = explainer, marker = model; lower-left is best."""
    fig, ax = plt.subplots(figsize=(7.0, 4.2), layout="constrained")
    markers = "osD^v<>p*h"
    explainers = sorted({e for by_explainer in points.values() for e in by_explainer})
    colours = {e: plt.get_cmap("tab10")(i % 10) for i, e in enumerate(explainers)}
    for m, by_explainer in enumerate(points.values()):
        for name, (seconds, auc) in by_explainer.items():
            ax.scatter(seconds, auc, marker=markers[m % len(markers)], color=colours[name], s=42, edgecolor="k",
                       linewidth=0.4)
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=colours[e], label=e) for e in explainers]
    handles += [plt.Line2D([], [], marker=markers[m % len(markers)], linestyle="", color="k", markerfacecolor="none",
                           label=model)
                for m, model in enumerate(points)]
    ax.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.set_xscale("log")
    ax.set_xlabel("time per image (s, log scale)")
    ax.set_ylabel("deletion AUC (lower = more faithful)")
    ax.grid(alpha=0.3)
    return fig
