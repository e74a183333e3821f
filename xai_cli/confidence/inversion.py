"""Put a real image into the generator's latent space, then walk its MSP condition down.

The seed's local explanation: invert a test image (find z with G(z, class, MSP) ≈ x, by optimisation, as
StyleGAN's projector does), then keep z and the class and lower the MSP condition: what changes is what
the classifier finds uncertain about this image. We invert into z, not w: the condition enters through
the mapping network, so only z keeps the condition a free input after inversion. Written by hand because
no library inverts an arbitrary conditional generator; the loop is plain Adam on z.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from xai_cli.confidence.evaluation import Classify, Generate
from xai_cli.utils.progress import track


@dataclass
class Inversion:
    z: torch.Tensor              # (1, D) the best latent found
    reconstruction: torch.Tensor  # G(z, class, MSP), shaped like the image
    rmse: float                  # root mean squared pixel error of the reconstruction


def invert(generate: Generate, x: torch.Tensor, label: int, msp: float, latent_dim: int, *, steps: int = 300,
           restarts: int = 16, lr: float = 0.05, prior_weight: float = 1e-3, seed: int = 0) -> Inversion:
    """Adam on `restarts` latents at once, from seeded standard-normal starts; the one with the lowest
    pixel MSE wins. A weak prior keeps ‖z‖² near its typical value D, so the latent stays one the generator
    was trained on (and lowering the MSP from it stays meaningful)."""
    z = torch.randn(restarts, latent_dim, generator=torch.Generator().manual_seed(seed)).requires_grad_(True)
    target = x.reshape(1, -1).float()
    labels = torch.full((restarts,), int(label), dtype=torch.long)
    msps = torch.full((restarts,), float(msp))
    optimiser = torch.optim.Adam([z], lr=lr)
    for _ in track(range(int(steps)), f"inverting an image of class {label}"):
        mse = (generate(z, labels, msps).reshape(restarts, -1) - target).pow(2).mean(1)
        prior = (z.pow(2).mean(1) - 1.0).pow(2)
        optimiser.zero_grad()
        (mse + prior_weight * prior).sum().backward()
        optimiser.step()
    with torch.no_grad():
        images = generate(z, labels, msps)
        mse = (images.reshape(restarts, -1) - target).pow(2).mean(1)
        best = int(mse.argmin())
    return Inversion(z[best : best + 1].detach(), images[best].detach(), float(mse[best].sqrt()))


def lower_confidence(generate: Generate, classify: Classify, inversion: Inversion, label: int,
                     msps: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """The inverted latent generated at each MSP condition in `msps` (class fixed): images and the
    classifier's probabilities on them."""
    n = len(msps)
    with torch.no_grad():
        images = generate(inversion.z.repeat(n, 1), torch.full((n,), int(label), dtype=torch.long),
                          torch.as_tensor(msps, dtype=torch.float32))
    return images, np.asarray(classify(images))
