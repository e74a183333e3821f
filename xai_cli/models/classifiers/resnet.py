"""ResNet-18 from torchvision, with a stem for small images and attribution-safe activations."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn
from torchvision.models import resnet as tv

from xai_cli.models.classifiers.base import TorchClassifier


class _BasicBlock(tv.BasicBlock):
    """torchvision's block applies one in-place ReLU module twice; give each use its own module."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.relu = nn.ReLU()
        self.relu_out = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        identity = self.downsample(x) if self.downsample is not None else x
        return self.relu_out(out + identity)


class ResNet18(TorchClassifier):
    """torchvision's ResNet-18 for `input_shape[0]` channels.

    `small_input` (28-32 px images) replaces the 7x7/2 stem and its max-pool by a 3x3/1 conv, as is usual
    for CIFAR/MNIST-sized inputs; without it a 28 px digit is 7 px wide before the first residual block.
    """

    def __init__(self, input_shape: Sequence[int] = (1, 28, 28), num_classes: int = 10, small_input: bool = True) -> None:
        super().__init__()
        net = tv.ResNet(_BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
        if small_input:
            net.conv1 = nn.Conv2d(input_shape[0], 64, kernel_size=3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        else:
            net.conv1 = nn.Conv2d(input_shape[0], 64, kernel_size=7, stride=2, padding=3, bias=False)
        net.relu = nn.ReLU()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
