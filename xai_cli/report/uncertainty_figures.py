"""Figures of `xai uncertainty`: MSP in vs out, the 2-D picture, and sample grids at one MSP condition."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from xai_cli.report.figures import plt, show_image


def msp_scatter(msp_in: np.ndarray, msp_out: np.ndarray, agree: np.ndarray, title: str) -> Figure:
    """The seed's Fig. 4: the MSP asked for (jittered) against the classifier's MSP on the sample."""
    fig, ax = plt.subplots(figsize=(4.6, 4.2), layout="constrained")
    step = np.diff(np.unique(msp_in)).min() if len(np.unique(msp_in)) > 1 else 0.05
    x = msp_in + np.random.default_rng(0).uniform(-0.3, 0.3, len(msp_in)) * step
    ax.scatter(x[agree], msp_out[agree], s=5, alpha=0.4, color="tab:blue", label="class as conditioned")
    ax.scatter(x[~agree], msp_out[~agree], s=5, alpha=0.6, color="tab:red", label="another class")
    lo = min(float(msp_in.min()), float(msp_out.min()))
    ax.plot([lo, 1], [lo, 1], color="black", lw=1, ls="--", label="MSP out = MSP in")
    ax.set_xlabel("MSP condition")
    ax.set_ylabel("classifier's MSP on the sample")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(title, fontsize=9)
    return fig


def plane_panels(real_x: np.ndarray, real_msp: np.ndarray, fake_x: np.ndarray, fake_msp: np.ndarray,
                 title: str) -> Figure:
    """The seed's Fig. 2: real points coloured by their MSP beside generated ones coloured by their condition."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 4), layout="constrained", sharex=True, sharey=True)
    for ax, xy, msp, name in ((axes[0], real_x, real_msp, "real (test), by the classifier's MSP"),
                              (axes[1], fake_x, fake_msp, "generated, by the MSP condition")):
        points = ax.scatter(xy[:, 0], xy[:, 1], c=msp, cmap="viridis", vmin=float(min(real_msp.min(), fake_msp.min())),
                            vmax=1.0, s=6)
        ax.set_title(name, fontsize=9)
    fig.colorbar(points, ax=axes, label="MSP")
    fig.suptitle(title, fontsize=10)
    return fig


def sample_grid(images: torch.Tensor, captions: Sequence[str], rows: int, title: str) -> Figure:
    """Images (rows × columns, row-major) with a caption above each: the classifier's answer."""
    cols = len(images) // rows
    fig, axes = plt.subplots(rows, cols, figsize=(1.05 * cols + 0.3, 1.2 * rows + 0.5), squeeze=False,
                             layout="constrained")
    for i, ax in enumerate(axes.flat):
        show_image(ax, images[i])
        ax.set_title(captions[i], fontsize=6, pad=2)
    fig.suptitle(title, fontsize=9)
    return fig
