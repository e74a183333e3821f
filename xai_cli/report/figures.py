"""Figure helpers shared by the analyses (matplotlib, headless)."""

from __future__ import annotations

from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI; set before pyplot is imported anywhere
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def heatmap(matrix: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str], title: str,
            value_format: str = "{:.3f}", cmap: str = "viridis", xlabel: str = "", ylabel: str = "") -> Figure:
    """A labelled matrix with its values written in the cells."""
    n_rows, n_cols = matrix.shape
    fig, ax = plt.subplots(figsize=(1.2 + 0.55 * max(n_cols, 3), 1.0 + 0.5 * max(n_rows, 3)))
    im = ax.imshow(matrix, cmap=cmap)
    ax.set_xticks(range(n_cols), labels=list(col_labels), rotation=45 if n_cols > 4 else 0, ha="right" if n_cols > 4 else "center")
    ax.set_yticks(range(n_rows), labels=list(row_labels))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    vmax = float(np.nanmax(matrix)) if matrix.size else 0.0
    for i in range(n_rows):
        for j in range(n_cols):
            v = matrix[i, j]
            ax.text(j, i, value_format.format(v), ha="center", va="center", fontsize=8,
                    color="white" if vmax and v < 0.6 * vmax else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def confusion_figure(confusion: np.ndarray, class_names: Sequence[str], title: str) -> Figure:
    return heatmap(confusion, class_names, class_names, title, value_format="{:d}", cmap="Blues",
                   xlabel="predicted", ylabel="true")
