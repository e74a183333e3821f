"""A network defined outside xai, as a user's own would be: imported by name (`tests.models.nets.TinyNet`)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class TinyNet(nn.Module):
    def __init__(self, input_shape: Sequence[int] = (1, 28, 28), num_classes: int = 10, width: int = 8) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(int(input_shape[0]), width, 3, stride=2), nn.ReLU(), nn.Flatten())
        with torch.no_grad():
            size = self.features(torch.zeros(1, *input_shape)).shape[1]
        self.head = nn.Linear(size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
