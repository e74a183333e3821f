"""Accuracy, confusion and how often models disagree."""

from __future__ import annotations

from itertools import combinations
from typing import Mapping

import numpy as np
from sklearn.metrics import confusion_matrix


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float((probs.argmax(1) == labels).mean())


def confusion(probs: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    return confusion_matrix(labels, probs.argmax(1), labels=list(range(num_classes)))


def pairwise_disagreement(predictions: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Share of inputs that each pair of models labels differently, keyed "a|b" in the given order."""
    return {f"{a}|{b}": float((predictions[a] != predictions[b]).mean()) for a, b in combinations(predictions, 2)}


def disagreement_matrix(predictions: Mapping[str, np.ndarray]) -> np.ndarray:
    names = list(predictions)
    return np.array([[float((predictions[a] != predictions[b]).mean()) for b in names] for a in names])
