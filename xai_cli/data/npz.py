"""A user's own images in an .npz archive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from xai_cli.data.base import ImageSetDataModule, Split, hold_out_val, stratified_three_way, to_split
from xai_cli.data.images import to_nchw
from xai_cli.errors import UserError


class NpzDataModule(ImageSetDataModule):
    def __init__(self, file: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.file = Path(file).expanduser()

    @property
    def name(self) -> str:
        return self.file.stem

    def load_splits(self) -> dict[str, Split]:
        if not self.file.is_file():
            raise UserError(f"dataset file not found: {self.file} (set dataset.file=/path/to/images.npz)")
        with np.load(self.file) as archive:
            arrays = {k: archive[k] for k in archive.files}
        if {"x_train", "y_train", "x_test", "y_test"} <= arrays.keys():
            train = (arrays["x_train"], arrays["y_train"])
            if {"x_val", "y_val"} <= arrays.keys():
                val = (arrays["x_val"], arrays["y_val"])
            else:
                val_share = self.val_size / (1.0 - self.test_size)
                train, val = hold_out_val(*train, val_share, self.split_seed)
            parts = {"train": train, "val": val, "test": (arrays["x_test"], arrays["y_test"])}
        elif {"x", "y"} <= arrays.keys():
            parts = stratified_three_way(arrays["x"], arrays["y"], self.test_size, self.val_size, self.split_seed)
        else:
            raise UserError(
                f"{self.file} holds arrays {sorted(arrays)}; expected x/y or x_train/y_train/x_test/y_test"
            )
        out = {}
        for name, (x, y) in parts.items():
            labels = np.asarray(y).astype(np.int64).ravel()
            if labels.min() < 0 or labels.max() >= self.num_classes:
                raise UserError(f"{self.file}: labels must lie in 0..{self.num_classes - 1} (dataset.num_classes)")
            out[name] = to_split(to_nchw(x, self.channels, self.image_size), labels)
        return out
