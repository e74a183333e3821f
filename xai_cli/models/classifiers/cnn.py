"""Plain convolutional nets from the source papers and slides: `cnn`, `small_cnn`, `keras_cnn`."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from xai_cli.models.classifiers.base import TorchClassifier, flat_features


class CNN(TorchClassifier):
    """The classic PyTorch MNIST net: conv32 k3, conv64 k3, maxpool, dropout, FC 9216->128, dropout, FC."""

    def __init__(self, input_shape: Sequence[int] = (1, 28, 28), num_classes: int = 10, dropout1: float = 0.25,
                 dropout2: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(input_shape[0], 32, 3), nn.ReLU(),
            nn.Conv2d(32, 64, 3), nn.ReLU(),
            nn.MaxPool2d(2), nn.Dropout(dropout1), nn.Flatten(),
        )
        self.head = nn.Sequential(
            nn.Linear(flat_features(self.features, input_shape), 128), nn.ReLU(), nn.Dropout(dropout2),
            nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class SmallCNN(TorchClassifier):
    """conv32 k3, maxpool, FC 5408->10: the smallest net of the Agree-to-Disagree study."""

    def __init__(self, input_shape: Sequence[int] = (1, 28, 28), num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(input_shape[0], 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        self.head = nn.Linear(flat_features(self.features, input_shape), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class KerasCNN(TorchClassifier):
    """The SHAP slides' Keras net: conv64 k2 'same', pool, dropout, conv32 k2 'same', pool, dropout, FC 256, FC."""

    def __init__(self, input_shape: Sequence[int] = (1, 28, 28), num_classes: int = 10, dropout: float = 0.3,
                 dropout_head: float = 0.5) -> None:
        super().__init__()
        # Keras 'same' with an even kernel pads one extra row/column at the bottom/right
        self.features = nn.Sequential(
            nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(input_shape[0], 64, 2), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(dropout),
            nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(64, 32, 2), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(dropout),
            nn.Flatten(),
        )
        self.head = nn.Sequential(
            nn.Linear(flat_features(self.features, input_shape), 256), nn.ReLU(), nn.Dropout(dropout_head),
            nn.Linear(256, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
