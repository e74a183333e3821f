"""Figures of `xai discrepancy`: decoded segments, the 2-D picture, and the shape of the areas found."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from xai_cli.report.figures import plt, show_image  # the headless backend is chosen there

_IN_AREA = "#d62728"


def segment_strip(images: torch.Tensor, t: Sequence[float], inside: np.ndarray, predictions: np.ndarray,
                  model_names: Sequence[str], class_names: Sequence[str], title: str) -> Figure:
    """A row of decoded images along one segment; a red frame where the models disagree, each model's
    prediction under each image. The first and last images are the two ends (reconstructions, in latent space)."""
    n = len(images)
    fig, axes = plt.subplots(1, n, figsize=(0.95 * n, 1.55 + 0.17 * len(model_names)), squeeze=False)
    for col, ax in enumerate(axes[0]):
        show_image(ax, images[col])
        if inside[col]:
            h, w = images[col].shape[-2:]
            ax.add_patch(Rectangle((-0.5, -0.5), w, h, fill=False, edgecolor=_IN_AREA, linewidth=3))
        labels = "\n".join(f"{m[:10]} {class_names[p]}" for m, p in zip(model_names, predictions[:, col]))
        ax.set_xlabel(labels, fontsize=7, color=_IN_AREA if inside[col] else "black")
        ax.set_title(f"t={t[col]:.3f}", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def image_row(images: torch.Tensor, captions: Sequence[str], title: str) -> Figure:
    fig, axes = plt.subplots(1, len(images), figsize=(1.3 * len(images) + 0.4, 1.9), squeeze=False)
    for ax, image, caption in zip(axes[0], images, captions):
        show_image(ax, image)
        ax.set_xlabel(caption, fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def plane_figure(grid_x: np.ndarray, grid_y: np.ndarray, grid_disagrees: np.ndarray, points: np.ndarray,
                 labels: np.ndarray, ends: np.ndarray, area_ends: np.ndarray, title: str) -> Figure:
    """2-D inputs: where the pool disagrees (shaded), the data, the segments searched (grey) and the
    discrepancy areas found on them (red)."""
    fig, ax = plt.subplots(figsize=(6.2, 5))
    ax.contourf(grid_x, grid_y, grid_disagrees.astype(float), levels=[0.5, 1.5], colors=["#fbd5d5"])
    ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="coolwarm", s=6, alpha=0.5, linewidths=0)
    for a, b in ends:
        ax.plot([a[0], b[0]], [a[1], b[1]], color="grey", linewidth=0.4, alpha=0.5)
    for a, b in area_ends:
        ax.plot([a[0], b[0]], [a[1], b[1]], color=_IN_AREA, linewidth=2)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("x₀")
    ax.set_ylabel("x₁")
    ax.plot([], [], color=_IN_AREA, linewidth=2, label="discrepancy areas found")
    ax.fill_between([], [], color="#fbd5d5", label="models disagree (dense grid)")
    ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    return fig


def area_lengths(lengths: np.ndarray, title: str) -> Figure:
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.hist(lengths, bins=np.linspace(0, 1, 21), color=_IN_AREA, alpha=0.8)
    ax.set_xlabel("area length (share of its segment, t_end − t_start)")
    ax.set_ylabel("areas")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
