"""Figure helpers shared by the analyses (matplotlib, headless)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI; set before pyplot is imported anywhere
# text from the data (class names, folder names) is shown as written: `$\foo$` would otherwise be parsed as
# mathtext, and a malformed one would fail the whole figure
matplotlib.rcParams["text.parse_math"] = False
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

if TYPE_CHECKING:
    import torch


def show_image(ax: plt.Axes, image: torch.Tensor | np.ndarray) -> None:
    """An input image as it is: (1, H, W) or (H, W) in grey, (3, H, W) in colour, pixels in [0, 1]; no ticks."""
    array = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if array.ndim == 3 and array.shape[0] == 3:
        ax.imshow(np.clip(array.transpose(1, 2, 0), 0, 1))
    else:
        ax.imshow(array.reshape(array.shape[-2:]) if array.ndim == 3 else array, cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])


def _text_colour(rgba: Sequence[float]) -> str:
    """Black on light cells, white on dark ones, whatever the colormap."""
    r, g, b = rgba[:3]
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


def heatmap(matrix: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str], title: str,
            value_format: str = "{:.3f}", cmap: str = "viridis", xlabel: str = "", ylabel: str = "",
            mask_diagonal: bool = False) -> Figure:
    """A labelled matrix with its values written in the cells.

    `mask_diagonal` greys the diagonal out of the colour scale, so that off-diagonal values (errors,
    disagreements) get the whole range instead of being washed out by it.
    """
    n_rows, n_cols = matrix.shape
    values = np.asarray(matrix, dtype=float)
    shown = np.ma.masked_where(np.eye(n_rows, n_cols, dtype=bool), values) if mask_diagonal else values
    colormap = plt.get_cmap(cmap).with_extremes(bad="#e6e6e6")
    fig, ax = plt.subplots(figsize=(1.4 + 0.6 * max(n_cols, 3), 1.0 + 0.5 * max(n_rows, 3)))
    im = ax.imshow(shown, cmap=colormap)
    long_labels = max(len(str(c)) for c in col_labels) > 3
    ax.set_xticks(range(n_cols), labels=list(col_labels), rotation=45 if long_labels else 0,
                  ha="right" if long_labels else "center")
    ax.set_yticks(range(n_rows), labels=list(row_labels))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    for i in range(n_rows):
        for j in range(n_cols):
            masked = mask_diagonal and i == j
            colour = "black" if masked else _text_colour(im.cmap(im.norm(values[i, j])))
            ax.text(j, i, value_format.format(matrix[i, j]), ha="center", va="center", fontsize=8, color=colour)
    distinct = np.unique(np.ma.compressed(np.ma.masked_invalid(shown)))
    if len(distinct) > 1:  # a bar over one value (two models' single disagreement rate) would mean nothing
        bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        if value_format == "{:d}":  # counts: no fractional ticks
            bar.locator = MaxNLocator(integer=True)
            bar.update_ticks()
    fig.tight_layout()
    return fig


def confusion_figure(confusion: np.ndarray, class_names: Sequence[str], title: str) -> Figure:
    """Counts in every cell; colour on the errors only (the diagonal, grey, would swamp them)."""
    return heatmap(confusion, class_names, class_names, title, value_format="{:d}", cmap="Reds",
                   xlabel="predicted", ylabel="true", mask_diagonal=True)
