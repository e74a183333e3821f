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
    """Classes are the folder names, sorted; `class_names` (one per folder, in that order) renames them."""

    location_keys = ("root",)

    def __init__(self, root: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root = Path(root).expanduser()
        if self.root.is_dir():  # the folders are known before any image is read: check the settings now
            folders = datasets.folder.find_classes(str(self.root))[0]
            if not kwargs.get("class_names"):
                self.class_names = folders
            elif len(self.class_names) != len(folders):
                raise UserError(f"dataset.class_names has {len(self.class_names)} names for {len(folders)} "
                                f"class folders in {self.root}")
            if len(folders) < 2:
                raise UserError(f"{self.root} has {len(folders)} class folder; a classifier needs two or more")
            if len(folders) != self.num_classes:
                raise UserError(f"{self.root} has {len(folders)} class folders but dataset.num_classes="
                                f"{self.num_classes}")

    @property
    def name(self) -> str:
        return self.root.name

    def content_files(self) -> tuple[Path, list[Path]]:
        """The image files ImageFolder reads, and nothing else (a README beside them changes no model)."""
        if not self.root.is_dir():
            raise UserError(f"image folder not found: {self.root} (set dataset.root=/path/with/one/folder/per/class)")
        classes = datasets.folder.find_classes(str(self.root))[1]
        found = datasets.folder.make_dataset(str(self.root), classes, extensions=datasets.folder.IMG_EXTENSIONS)
        return self.root, [Path(path) for path, _ in found]

    def load_splits(self) -> dict[str, Split]:
        if not self.root.is_dir():
            raise UserError(f"image folder not found: {self.root} (set dataset.root=/path/with/one/folder/per/class)")
        mode = "L" if self.channels == 1 else "RGB"
        tf = transforms.Compose(
            [transforms.Resize((self.image_size, self.image_size), antialias=True), transforms.ToTensor()]
        )
        folder = datasets.ImageFolder(str(self.root), transform=tf, loader=lambda p: _open(p, mode))
        x = torch.stack([folder[i][0] for i in range(len(folder))]).numpy()
        y = np.asarray(folder.targets, dtype=np.int64)
        return self.three_way(x, y)


def _open(path: str, mode: str) -> Any:
    from PIL import Image

    with Image.open(path) as im:
        return im.convert(mode)
