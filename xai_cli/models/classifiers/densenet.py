"""DenseNet-121 from torchvision for colour or medical images, with attribution-safe activations."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torchvision.models import densenet as tv

from xai_cli.models.classifiers.base import TorchClassifier


class DenseNet121(TorchClassifier):
    """torchvision's DenseNet-121; `small_input` swaps the 7x7/2 stem and pool for a 3x3/1 conv (<64 px images)."""

    def __init__(self, input_shape: Sequence[int] = (3, 32, 32), num_classes: int = 10, small_input: bool = True,
                 drop_rate: float = 0.0) -> None:
        super().__init__()
        net = tv.DenseNet(32, (6, 12, 24, 16), 64, drop_rate=drop_rate, num_classes=num_classes)
        if small_input:
            net.features.conv0 = nn.Conv2d(input_shape[0], 64, kernel_size=3, stride=1, padding=1, bias=False)
            net.features.pool0 = nn.Identity()
        else:
            net.features.conv0 = nn.Conv2d(input_shape[0], 64, kernel_size=7, stride=2, padding=3, bias=False)
        for module in net.modules():  # torchvision builds them in-place
            if isinstance(module, nn.ReLU):
                module.inplace = False
        self.features = net.features
        # torchvision's forward ends in a functional in-place ReLU; modules instead, one per use
        self.head = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), net.classifier)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
