"""`mlp_gan`: a conditional GAN of 5-layer MLPs, for 2-D toys (moons) and flattened small inputs.

The discriminator conditions by projection (Miyato & Koyama 2018): its score is a linear read-out of its
features plus their inner product with an embedding of the condition.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from xai_cli.models.generators import check_generated_size


def _stack(n_in: int, hidden: int, layers: int) -> nn.Sequential:
    """`layers` Linear + LeakyReLU blocks (one activation module per use)."""
    blocks: list[nn.Module] = []
    for i in range(layers):
        blocks += [nn.Linear(n_in if i == 0 else hidden, hidden), nn.LeakyReLU(0.2)]
    return nn.Sequential(*blocks)


class MLPGenerator(nn.Module):
    """[z, embed(condition)] → 4 hidden layers → the flattened output: 5 linear layers."""

    def __init__(self, latent_dim: int, num_classes: int, output_shape: Sequence[int], hidden: int = 128,
                 embed_dim: int = 16, output: str = "linear") -> None:
        super().__init__()
        if output not in ("linear", "sigmoid"):
            raise ValueError(f"mlp_gan output={output}: use linear or sigmoid")
        check_generated_size("mlp_gan", output_shape)
        self.embed = nn.Linear(num_classes + 1, embed_dim)
        self.body = _stack(latent_dim + embed_dim, hidden, 4)
        self.out = nn.Linear(hidden, math.prod(output_shape))
        self.squash = nn.Sigmoid() if output == "sigmoid" else nn.Identity()

    def forward(self, z: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return self.squash(self.out(self.body(torch.cat([z, self.embed(condition)], 1))))


class MLPDiscriminator(nn.Module):
    """x → 4 hidden layers → score + ⟨embed(condition), features⟩: 5 linear layers and the projection."""

    def __init__(self, num_classes: int, input_shape: Sequence[int], hidden: int = 128) -> None:
        super().__init__()
        self.body = _stack(math.prod(input_shape), hidden, 4)
        self.out = nn.Linear(hidden, 1)
        self.embed = nn.Linear(num_classes + 1, hidden, bias=False)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        h = self.body(x.flatten(1))
        return self.out(h)[:, 0] + (self.embed(condition) * h).sum(1)
