"""A user's own images in an .npz archive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from xai_cli.data.archive import read_npz
from xai_cli.data.arrays import as_labels, check_pixel_values
from xai_cli.data.base import ImageSetDataModule, Split, hold_out_val, stratified_three_way, to_split
from xai_cli.data.classes import existing_npz
from xai_cli.data.images import to_nchw
from xai_cli.errors import UserError


class NpzDataModule(ImageSetDataModule):
    """Classes: `class_names` (the archive's own, by default) or 0..num_classes-1."""

    location_keys = ("file",)

    def __init__(self, file: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.file = Path(file).expanduser()
        numbered = self.class_names == [str(i) for i in range(len(self.class_names))]
        if numbered and len(self.class_names) < self.num_classes:  # more classes than labels seen: number them
            self.class_names = [str(i) for i in range(self.num_classes)]
        if numbered and len(self.class_names) > self.num_classes:
            raise UserError(f"{self.file.name} has labels up to {len(self.class_names) - 1} but dataset.num_classes="
                            f"{self.num_classes}")
        if len(self.class_names) != self.num_classes:
            raise UserError(f"{len(self.class_names)} class names for dataset.num_classes={self.num_classes} "
                            f"({self.file.name}); give one name per class")

    @property
    def name(self) -> str:
        return self.file.stem

    def content_files(self) -> tuple[Path, list[Path]]:
        return self.file.parent, [existing_npz(self.file)]

    def check(self) -> None:
        self._parts()

    def load_splits(self) -> dict[str, Split]:
        return {name: to_split(to_nchw(x, self.channels, self.image_size), y) for name, (x, y) in self._parts().items()}

    def _parts(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The archive's arrays, checked (pixels, labels) and split three ways, at their stored size."""
        arrays = read_npz(existing_npz(self.file))
        for suffix in ("", "_train", "_val", "_test"):  # labels checked before any split is drawn from them
            if f"x{suffix}" in arrays:
                check_pixel_values(arrays[f"x{suffix}"], f"{self.file.name}: x{suffix}")
            if f"x{suffix}" in arrays and f"y{suffix}" in arrays:
                arrays[f"y{suffix}"] = self._labels(arrays[f"y{suffix}"], len(arrays[f"x{suffix}"]), f"y{suffix}")
        if {"x_train", "y_train", "x_test", "y_test"} <= arrays.keys():
            train = (arrays["x_train"], arrays["y_train"])
            if {"x_val", "y_val"} <= arrays.keys():
                val = (arrays["x_val"], arrays["y_val"])
            else:
                val_share = self.val_size / (1.0 - self.test_size)
                try:
                    train, val = hold_out_val(*train, val_share, self.split_seed)
                except ValueError as exc:  # a class with too few images to be in both
                    raise UserError(f"{self.file.name}: cannot hold a validation split out of x_train with every "
                                    f"class in each ({exc}); add x_val/y_val") from None
            parts = {"train": train, "val": val, "test": (arrays["x_test"], arrays["y_test"])}
        elif {"x", "y"} <= arrays.keys():
            parts = stratified_three_way(arrays["x"], arrays["y"], self.test_size, self.val_size, self.split_seed)
        else:
            raise UserError(
                f"{self.file} holds arrays {sorted(arrays)}; expected x/y or x_train/y_train/x_test/y_test"
            )
        if len(np.unique(parts["train"][1])) < 2:
            raise UserError(f"{self.file.name}: the training labels hold a single class; a classifier needs two or more")
        return parts

    def _labels(self, y: np.ndarray, n: int, key: str) -> np.ndarray:
        labels = as_labels(y, n, f"{self.file.name}: {key}")
        if labels.max() >= self.num_classes:
            raise UserError(f"{self.file.name}: labels must lie in 0..{self.num_classes - 1} "
                            f"(dataset.num_classes={self.num_classes}), got {labels.max()}")
        return labels
