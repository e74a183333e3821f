"""A user's own arrays, handed over from Python: already in memory, already split (or split here)."""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import numpy as np
import torch

from xai_cli.data.base import ArrayDataModule, Split, hold_out_val, to_split
from xai_cli.errors import UserError


def as_model_inputs(x: Any, what: str) -> np.ndarray:
    """Images (N,H,W), (N,H,W,C) or (N,C,H,W) → float32 (N,C,H,W) in [0, 1]; features (N,D) stay as they are.

    uint8 images are divided by 255. Float images must already lie in [0, 1]: a model's own normalisation
    belongs inside the model, so that explanations stay in pixel space.
    """
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim not in (2, 3, 4) or len(a) == 0:
        raise UserError(f"{what}: expected a non-empty array of shape (N,D), (N,H,W), (N,H,W,C) or (N,C,H,W), "
                        f"got {a.shape}")
    check_pixel_values(a, what)
    image = a.ndim > 2
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    a = a.astype(np.float32)
    if image:
        if a.ndim == 3:
            a = a[:, None]
        elif a.shape[-1] in (1, 3) and a.shape[1] not in (1, 3):
            a = a.transpose(0, 3, 1, 2)
        if a.shape[1] not in (1, 3):
            raise UserError(f"{what}: images need 1 or 3 channels, got shape {a.shape}")
        if a.min() < 0.0 or a.max() > 1.0:
            raise UserError(f"{what}: pixel values lie in [{a.min():.3g}, {a.max():.3g}]; pass uint8 or floats in "
                            "[0, 1] (normalise inside the model)")
    return np.ascontiguousarray(a)


def check_pixel_values(a: np.ndarray, what: str) -> None:
    """Numbers, every one finite: NaN or infinite pixels would train (and store) a NaN model."""
    if not np.issubdtype(a.dtype, np.number):
        raise UserError(f"{what} holds {a.dtype} values, not numbers")
    if np.issubdtype(a.dtype, np.inexact) and not np.isfinite(a).all():
        raise UserError(f"{what} holds {int((~np.isfinite(a)).sum())} NaN or infinite pixel values")


def as_labels(y: Any, n: int, what: str) -> np.ndarray:
    labels = (y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)).ravel()
    if len(labels) != n:
        raise UserError(f"{what}: {len(labels)} labels for {n} inputs")
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.array_equal(labels, np.round(labels)):
            raise UserError(f"{what}: labels must be class indices 0..K-1, got {labels.dtype} values")
    labels = labels.astype(np.int64)
    if labels.min() < 0:
        raise UserError(f"{what}: labels must be class indices 0..K-1, got {labels.min()}")
    return labels


class ArraysDataModule(ArrayDataModule):
    """Train/test arrays given in Python; a validation split is held out of train (stratified) if not given.

    Its store identity is the sha256 of the arrays themselves: models trained on it are found again for the
    same data, and never for other data under the same name.
    """

    def __init__(self, x_train: Any, y_train: Any, x_test: Any, y_test: Any, x_val: Any = None, y_val: Any = None,
                 class_names: Sequence[str] | None = None, name: str = "arrays", val_size: float = 0.1,
                 split_seed: int = 0, batch_size: int = 64) -> None:
        parts = {"train": (x_train, y_train), "test": (x_test, y_test)}
        if (x_val is None) != (y_val is None):
            raise UserError("give both x_val and y_val, or neither (a validation split is then held out of train)")
        if x_val is not None:
            parts["val"] = (x_val, y_val)
        arrays = {}
        for split, (x, y) in parts.items():
            xs = as_model_inputs(x, f"x_{split}")
            arrays[split] = (xs, as_labels(y, len(xs), f"y_{split}"))
        shapes = {split: xs.shape[1:] for split, (xs, _) in arrays.items()}
        if len(set(shapes.values())) > 1:
            raise UserError(f"the splits' inputs differ in shape: {shapes}")
        num_classes = int(max(ys.max() for _, ys in arrays.values())) + 1
        if class_names is not None:
            if len(class_names) < num_classes:
                raise UserError(f"{len(class_names)} class names for labels up to {num_classes - 1}")
            num_classes = len(class_names)
        if "val" not in arrays:
            try:
                arrays["train"], arrays["val"] = hold_out_val(*arrays["train"], val_size, split_seed)
            except ValueError as exc:  # e.g. a class with a single training example cannot be stratified
                raise UserError(f"cannot hold a validation split out of train ({exc}); pass x_val/y_val") from exc
        super().__init__(input_shape=shapes["train"], num_classes=num_classes, batch_size=batch_size,
                         split_seed=split_seed, class_names=class_names)
        self._name = str(name)
        self._arrays = arrays
        self._content = _content_sha256(arrays, self.class_names)

    @property
    def name(self) -> str:
        return self._name

    def load_splits(self) -> dict[str, Split]:
        return {split: to_split(x, y) for split, (x, y) in self._arrays.items()}

    def store_identity(self) -> dict[str, Any]:
        return {"_target_": f"{type(self).__module__}.{type(self).__name__}", "name": self.name,
                "input_shape": list(self.input_shape), "num_classes": self.num_classes,
                "content_sha256": self._content}


def _content_sha256(arrays: dict[str, tuple[np.ndarray, np.ndarray]], class_names: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for split in sorted(arrays):
        for a in arrays[split]:
            digest.update(f"{split}{a.dtype}{a.shape}".encode())
            digest.update(a.tobytes())
    digest.update("\0".join(class_names).encode())
    return digest.hexdigest()
