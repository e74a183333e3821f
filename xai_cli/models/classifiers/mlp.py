"""Multi-layer perceptron on flattened inputs (images or plain features such as moons)."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from xai_cli.models.classifiers.base import TorchClassifier


class MLP(TorchClassifier):
    """784 -> 412 -> 512 -> 10 with ReLU and dropout by default; any input shape is flattened."""

    def __init__(self, input_shape: Sequence[int] = (1, 28, 28), num_classes: int = 10,
                 hidden: Sequence[int] = (412, 512), dropout: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
