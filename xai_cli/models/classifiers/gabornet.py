"""GaborNet: small_cnn whose first layer is a bank of learnable Gabor filters.

No library ships a learnable Gabor convolution, so it is written here: each output channel learns the
five parameters of a Gabor function (orientation, scale, wavelength, phase, aspect) and its kernel is
rebuilt from them at every forward pass, keeping the filter a true Gabor throughout training.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from xai_cli.models.classifiers.base import TorchClassifier, flat_features


class GaborConv2d(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5, padding: int = 1) -> None:
        super().__init__()
        self.in_channels, self.kernel_size, self.padding = in_channels, kernel_size, padding
        n = out_channels
        self.theta = nn.Parameter(torch.arange(n) * math.pi / n)            # orientations spread over [0, pi)
        self.sigma = nn.Parameter(torch.full((n,), kernel_size / 4.0))      # envelope width, px
        self.lambd = nn.Parameter(torch.linspace(2.0, kernel_size, n))      # wavelength, px
        self.psi = nn.Parameter(torch.zeros(n))                             # phase
        self.gamma = nn.Parameter(torch.full((n,), 0.5))                    # spatial aspect ratio
        self.bias = nn.Parameter(torch.zeros(n))
        r = (kernel_size - 1) / 2.0
        ys, xs = torch.meshgrid(torch.linspace(-r, r, kernel_size), torch.linspace(-r, r, kernel_size), indexing="ij")
        self.register_buffer("xs", xs, persistent=False)
        self.register_buffer("ys", ys, persistent=False)

    def kernels(self) -> torch.Tensor:
        th = self.theta.view(-1, 1, 1)
        x_rot = self.xs * torch.cos(th) + self.ys * torch.sin(th)
        y_rot = -self.xs * torch.sin(th) + self.ys * torch.cos(th)
        sigma = self.sigma.abs().clamp_min(0.5).view(-1, 1, 1)
        envelope = torch.exp(-(x_rot**2 + (self.gamma.view(-1, 1, 1) * y_rot) ** 2) / (2 * sigma**2))
        carrier = torch.cos(2 * math.pi * x_rot / self.lambd.abs().clamp_min(1.0).view(-1, 1, 1) + self.psi.view(-1, 1, 1))
        k = envelope * carrier  # (out, k, k), shared by every input channel
        return k.unsqueeze(1).expand(-1, self.in_channels, -1, -1) / self.in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.kernels(), self.bias, padding=self.padding)


class GaborNet(TorchClassifier):
    """Gabor conv 32 k5 (pad 1, so the map stays 26x26 as with k3), ReLU, maxpool, FC 5408->10."""

    def __init__(self, input_shape: Sequence[int] = (1, 28, 28), num_classes: int = 10, kernel_size: int = 5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            GaborConv2d(input_shape[0], 32, kernel_size, padding=(kernel_size - 3) // 2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.head = nn.Linear(flat_features(self.features, input_shape), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
