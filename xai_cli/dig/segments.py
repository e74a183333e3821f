"""Counterfactual segments: each anchor joined to its nearest neighbours that some model labels otherwise."""

from __future__ import annotations

import numpy as np
import torch


def choose_anchors(predictions: np.ndarray, confidence: np.ndarray, n: int, choice: str, seed: int) -> np.ndarray:
    """Indices of `n` anchor instances.

    `uncertain` (default): instances the models already disagree on first, then the ones the least
    confident model is least sure about — discrepancy areas lie near them. `random`: a seeded sample.
    `predictions` is (n_models, N); `confidence` (N,) is the smallest top-class probability over models.
    """
    n = min(int(n), predictions.shape[1])
    if choice == "random":
        return np.sort(np.random.default_rng(seed).choice(predictions.shape[1], n, replace=False))
    if choice == "uncertain":
        agreed = (predictions == predictions[:1]).all(axis=0)
        order = np.lexsort((confidence, agreed))  # last key first: disagreements, then low confidence
        return np.sort(order[:n])
    raise ValueError(f"unknown anchor choice {choice!r}: use uncertain or random")


def counterfactual_segments(codes: torch.Tensor, predictions: np.ndarray, anchors: np.ndarray, k: int,
                            chunk: int = 512) -> np.ndarray:
    """(S, 2) index pairs (anchor, neighbour), each unordered pair once.

    The neighbours of an anchor are its k nearest instances (Euclidean, in the coordinates `codes`)
    whose vector of model predictions differs from the anchor's: another class for some model, or a
    disagreement where the anchor has none. Distances are computed a chunk of anchors at a time.
    """
    # one integer per distinct prediction vector, so "differs for some model" is one comparison
    _, signature = np.unique(predictions.T, axis=0, return_inverse=True)
    signature = torch.as_tensor(signature.reshape(-1))
    codes = codes.float()
    pairs = []
    for start in range(0, len(anchors), chunk):
        a = torch.as_tensor(anchors[start : start + chunk])
        dist = torch.cdist(codes[a], codes)
        dist[signature[None, :] == signature[a][:, None]] = float("inf")
        d, j = dist.topk(min(k, dist.shape[1]), dim=1, largest=False)
        found = torch.isfinite(d)
        pairs.append(torch.stack([a[:, None].expand_as(j)[found], j[found]], dim=1).numpy())
    if not pairs or not sum(len(p) for p in pairs):
        return np.zeros((0, 2), dtype=np.int64)
    pairs_all = np.concatenate(pairs).astype(np.int64)
    _, first = np.unique(np.sort(pairs_all, axis=1), axis=0, return_index=True)
    return pairs_all[np.sort(first)]
