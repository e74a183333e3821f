"""LeNet as in the PyTorch MNIST example of the DIG-CV and SHAP sources."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from xai_cli.models.classifiers.base import TorchClassifier, flat_features


class LeNet(TorchClassifier):
    """conv 1->10 k5, maxpool, ReLU, conv 10->20 k5, dropout, maxpool, ReLU, FC 320->50, dropout, FC 50->10."""

    def __init__(self, input_shape: Sequence[int] = (1, 28, 28), num_classes: int = 10, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(input_shape[0], 10, 5), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(10, 20, 5), nn.Dropout2d(dropout), nn.MaxPool2d(2), nn.ReLU(),
            nn.Flatten(),
        )
        self.head = nn.Sequential(
            nn.Linear(flat_features(self.features, input_shape), 50), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(50, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
