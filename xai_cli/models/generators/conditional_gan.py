"""A GAN conditioned on [one-hot class, MSP]: the container the model store keeps for `xai uncertainty`.

The condition is the class and the frozen classifier's maximum softmax probability (MSP) of a real image;
generator and discriminator embed it themselves. The container holds both networks and the generator's
exponential moving average (what the analysis samples from, as in StyleGAN2), so one store entry is the
whole trained GAN.
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from xai_cli.models.base import StorableModule


def condition_vector(labels: torch.Tensor, msp: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(N, K + 1): one-hot class, then the MSP."""
    return torch.cat([F.one_hot(labels.long(), num_classes).float(), msp.float().reshape(-1, 1)], 1)


class ConditionalGAN(StorableModule):
    def __init__(self, generator: nn.Module, discriminator: nn.Module, latent_dim: int, num_classes: int,
                 output_shape: Sequence[int]) -> None:
        super().__init__()
        self.generator, self.discriminator = generator, discriminator
        self.generator_ema = copy.deepcopy(generator).requires_grad_(False)
        self.latent_dim, self.num_classes = int(latent_dim), int(num_classes)
        self.output_shape = tuple(int(s) for s in output_shape)

    def condition(self, labels: torch.Tensor, msp: torch.Tensor) -> torch.Tensor:
        return condition_vector(labels.to(self.device), msp.to(self.device), self.num_classes)

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=generator).to(self.device)

    def generate(self, z: torch.Tensor, labels: torch.Tensor, msp: torch.Tensor, ema: bool = True) -> torch.Tensor:
        """Samples (N, *output_shape) for latents z and conditions (labels, msp); the EMA generator by default."""
        g = self.generator_ema if ema else self.generator
        return g(z.to(self.device), self.condition(labels, msp)).reshape(len(z), *self.output_shape)

    @torch.no_grad()
    def update_ema(self, beta: float) -> None:
        for ema, live in zip(self.generator_ema.parameters(), self.generator.parameters()):
            ema.lerp_(live, 1.0 - beta)
        for ema, live in zip(self.generator_ema.buffers(), self.generator.buffers()):
            ema.copy_(live)
