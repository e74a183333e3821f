"""A deep ensemble: N independently initialised copies of one architecture, probabilities averaged."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from xai_cli.models.classifiers.base import TorchClassifier


class Ensemble(TorchClassifier):
    def __init__(self, member: Callable[[], TorchClassifier], n_members: int = 5) -> None:
        super().__init__()
        if n_members < 1:
            raise ValueError("an ensemble needs at least one member")
        # built one after another from the seeded RNG, so every member starts from different weights
        self.members = nn.ModuleList(member() for _ in range(n_members))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([F.softmax(m(x), dim=-1) for m in self.members]).mean(0)
        # log of the averaged probabilities: softmax of it gives back exactly the ensemble's probabilities
        return torch.log(probs.clamp_min(1e-12))

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # each member is fit on its own loss (gradients never mix), as when trained one by one
        return torch.stack([F.cross_entropy(m(x), y) for m in self.members]).sum()
