"""The classifier interface and the base class of the torch classifiers."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xai_cli.models.base import StorableModule


@runtime_checkable
class Classifier(Protocol):
    def predict_proba(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        """Class probabilities (N, K) for inputs (N, *input_shape)."""
        ...

    def num_parameters(self) -> int: ...

    def save(self, path: Path) -> None: ...

    def load(self, path: Path) -> None: ...


class TorchClassifier(StorableModule):
    """`forward` returns logits; `predict_proba` batches inputs through the model without gradients."""

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self(x), y)

    def validation_metrics(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"val_acc": (self(x).argmax(-1) == y).float().mean()}

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor | np.ndarray, batch_size: int = 128) -> np.ndarray:
        device = self.device
        was_training = self.training
        self.eval()
        x = torch.as_tensor(x, dtype=torch.float32)
        out = [F.softmax(self(x[i : i + batch_size].to(device)), dim=-1).cpu() for i in range(0, len(x), batch_size)]
        self.train(was_training)
        return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)


def flat_features(features: nn.Module, input_shape: Sequence[int]) -> int:
    """How many values `features` yields for one input: sizes the first dense layer for any image size."""
    with torch.no_grad():
        return int(features(torch.zeros(1, *input_shape)).numel())
