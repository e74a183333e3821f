"""Gaussian noise and Gaussian blur at five severities, drawn per image index from a fixed seed."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter

CORRUPTION_KINDS = ("clean", "noise", "blur")  # codes 0, 1, 2 in the per-image `corruption` array


def corrupt(
    images: np.ndarray,
    seed: int,
    stream: int,
    fraction: float,
    noise_sigmas: Sequence[float],
    blur_sigmas: Sequence[float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Corrupt round(fraction*N) images chosen by the seed; return (images, kind code, severity 0-5).

    Everything is drawn from one generator keyed by (seed, stream) in a fixed order, so image i of a
    given file always gets the same corruption, whatever split or batch it later lands in.
    """
    if len(noise_sigmas) != 5 or len(blur_sigmas) != 5:
        raise ValueError("noise_sigmas and blur_sigmas need five levels each (severity 1-5)")
    n = len(images)
    rng = np.random.default_rng([seed, stream])
    chosen = rng.permutation(n)[: int(round(fraction * n))]
    kind = np.zeros(n, dtype=np.int8)
    severity = np.zeros(n, dtype=np.int8)
    kind[chosen] = rng.integers(1, 3, size=len(chosen))
    severity[chosen] = rng.integers(1, 6, size=len(chosen))
    noise = rng.standard_normal(images.shape, dtype=np.float32)

    out = images.astype(np.float32, copy=True)
    leading = (0,) * (images.ndim - 2)  # no blur across images or channels, only the last two (H, W) axes
    for level in range(1, 6):
        noisy = (kind == 1) & (severity == level)
        out[noisy] += noise_sigmas[level - 1] * noise[noisy]
        blurry = np.flatnonzero((kind == 2) & (severity == level))
        if len(blurry):
            s = blur_sigmas[level - 1]
            out[blurry] = gaussian_filter(out[blurry], sigma=(*leading, s, s))
    np.clip(out, 0.0, 1.0, out=out)
    return out, kind, severity
