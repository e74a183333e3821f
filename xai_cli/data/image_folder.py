"""A user's own images, one folder per class (torchvision's ImageFolder layout)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision import datasets, transforms

from xai_cli.data.base import ImageSetDataModule, Split
from xai_cli.errors import UserError


class ImageFolderDataModule(ImageSetDataModule):
    def __init__(self, root: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root = Path(root).expanduser()
        if self.root.is_dir():  # class names are the folder names, known before any image is read
            self.class_names = datasets.folder.find_classes(str(self.root))[0]

    @property
    def name(self) -> str:
        return self.root.name

    def load_splits(self) -> dict[str, Split]:
        if not self.root.is_dir():
            raise UserError(f"image folder not found: {self.root} (set dataset.root=/path/with/one/folder/per/class)")
        mode = "L" if self.channels == 1 else "RGB"
        tf = transforms.Compose(
            [transforms.Resize((self.image_size, self.image_size), antialias=True), transforms.ToTensor()]
        )
        folder = datasets.ImageFolder(str(self.root), transform=tf, loader=lambda p: _open(p, mode))
        if len(folder.classes) != self.num_classes:
            raise UserError(
                f"{self.root} has {len(folder.classes)} class folders but dataset.num_classes={self.num_classes}"
            )
        x = torch.stack([folder[i][0] for i in range(len(folder))]).numpy()
        y = np.asarray(folder.targets, dtype=np.int64)
        return self.three_way(x, y)


def _open(path: str, mode: str) -> Any:
    from PIL import Image

    with Image.open(path) as im:
        return im.convert(mode)
