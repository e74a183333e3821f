"""The embedded default: scikit-learn's 8x8 digits, framed like MNIST (no download, ships with sklearn)."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from sklearn.datasets import load_digits

from xai_cli.data.base import ImageSetDataModule, Split
from xai_cli.data.images import to_nchw


class DigitsDataModule(ImageSetDataModule):
    def __init__(self, digit_box: int = 20, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if digit_box > self.image_size:
            raise ValueError(f"digit_box ({digit_box}) must not exceed image_size ({self.image_size})")
        self.digit_box = digit_box

    @property
    def name(self) -> str:
        return "digits"

    def load_splits(self) -> dict[str, Split]:
        bunch = load_digits()
        x = to_nchw(bunch.images / 16.0, self.channels, self.digit_box)  # 0..16 ink -> [0, 1], 8 -> box px
        margin = self.image_size - self.digit_box
        x = F.pad(x, (margin // 2, margin - margin // 2, margin // 2, margin - margin // 2))
        return self.three_way(x.numpy(), bunch.target)
