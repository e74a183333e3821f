"""Networks defined outside xai, as a user's own would be: imported by name (`tests.models.nets.TinyNet`)."""

from __future__ import annotations

from typing import Sequence

import lightning.pytorch as L
import torch
import torch.nn.functional as F
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


class LitTinyNet(L.LightningModule):
    """TinyNet as a LightningModule, as a user's Lightning project would define it."""

    def __init__(self, width: int = 8, lr: float = 1e-2) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = TinyNet(width=width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
