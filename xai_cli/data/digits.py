"""The embedded default: scikit-learn's 8x8 digits, framed like MNIST (no download, ships with sklearn)."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from sklearn.datasets import load_digits

from xai_cli.data.base import ArrayDataModule, Split, stratified_three_way, to_split
from xai_cli.data.images import to_nchw


class DigitsDataModule(ArrayDataModule):
    def __init__(
        self,
        image_size: int = 28,
        digit_box: int = 20,
        channels: int = 1,
        test_size: float = 0.2,
        val_size: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if digit_box > image_size:
            raise ValueError(f"digit_box ({digit_box}) must not exceed image_size ({image_size})")
        self.image_size, self.digit_box, self.channels = image_size, digit_box, channels
        self.test_size, self.val_size = test_size, val_size

    @property
    def name(self) -> str:
        return "digits"

    def load_splits(self) -> dict[str, Split]:
        bunch = load_digits()
        x = to_nchw(bunch.images / 16.0, self.channels, self.digit_box)  # 0..16 ink -> [0, 1], 8 -> box px
        margin = self.image_size - self.digit_box
        x = F.pad(x, (margin // 2, margin - margin // 2, margin // 2, margin - margin // 2))
        parts = stratified_three_way(x.numpy(), bunch.target, self.test_size, self.val_size, self.split_seed)
        return {name: to_split(xs, ys) for name, (xs, ys) in parts.items()}
