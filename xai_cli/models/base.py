"""What every torch model kept in the model store shares: its size, and saving/loading its weights."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class StorableModule(nn.Module):
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def save(self, path: Path) -> None:
        torch.save(self.state_dict(), path)

    def load(self, path: Path) -> None:
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device
