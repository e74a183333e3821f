"""The pool of models under comparison, queried together on one batch of points."""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import torch

from xai_cli.models.classifiers.base import Classifier
from xai_cli.utils.progress import track


class ModelPool:
    """Every model's predicted class for a batch of inputs, counting the calls.

    `calls` counts pool queries (one batch through every model), `points` the inputs they carried:
    the figures the batched search is judged by.
    """

    def __init__(self, models: Mapping[str, Classifier]) -> None:
        if len(models) < 2:
            raise ValueError(f"a discrepancy needs at least two models, got {len(models)}")
        self.models = dict(models)
        self.names = list(models)
        self.calls = 0
        self.points = 0

    def predict(self, x: torch.Tensor) -> np.ndarray:
        """Predicted classes (n_models, N)."""
        self.calls += 1
        self.points += len(x)
        return self._labels(x)

    def predict_decoded(self, z: torch.Tensor, decode: Callable[[torch.Tensor], torch.Tensor],
                        chunk: int = 8192, description: str | None = None) -> np.ndarray:
        """Predicted classes (n_models, N) of decode(z): one query, decoded a chunk at a time to bound memory."""
        self.calls += 1
        self.points += len(z)
        starts = range(0, len(z), chunk)
        if description and len(z) > chunk:
            starts = track(starts, description, total=len(starts))
        parts = [self._labels(decode(z[i : i + chunk])) for i in starts]
        return np.concatenate(parts, axis=1) if parts else np.zeros((len(self), 0), dtype=np.int64)

    def _labels(self, x: torch.Tensor) -> np.ndarray:
        return np.stack([np.asarray(m.predict_proba(x)).argmax(1) for m in self.models.values()])

    def __len__(self) -> int:
        return len(self.names)


def unanimous(predictions: np.ndarray) -> np.ndarray:
    """(N,) True where every model predicts the same class; `predictions` is (n_models, N)."""
    return (predictions == predictions[:1]).all(axis=0)
