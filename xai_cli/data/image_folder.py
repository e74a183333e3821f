"""A user's own images, one folder per class (torchvision's ImageFolder layout)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision import datasets
from torchvision.transforms import functional as TF

from xai_cli.data.base import ImageSetDataModule, Split
from xai_cli.data.classes import existing_folder
from xai_cli.errors import UserError, first_line


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

    def check(self) -> None:
        """Every image decodes: a truncated or misnamed file would otherwise fail the run after its directory
        exists. Images already seen whole (same size and mtime) are not read again."""
        cache = self.hash_cache()
        try:
            for path, _ in self._images():
                cache.remember(Path(path), "decodes", _decodes)
        finally:
            cache.save()

    def content_files(self) -> tuple[Path, list[Path]]:
        """The image files read, and nothing else (a README beside them changes no model)."""
        return self.root, [Path(path) for path, _ in self._images()]

    def load_splits(self) -> dict[str, Split]:
        found = self._images()
        x = torch.stack([_open(path, self.channels, self.image_size) for path, _ in found]).numpy()
        y = np.asarray([label for _, label in found], dtype=np.int64)
        return self.three_way(x, y)

    def _images(self) -> list[tuple[str, int]]:
        """(path, class index) of every image, as torchvision's ImageFolder finds them."""
        classes = datasets.folder.find_classes(str(existing_folder(self.root)))[1]
        try:
            return datasets.folder.make_dataset(str(self.root), classes, extensions=datasets.folder.IMG_EXTENSIONS)
        except FileNotFoundError as exc:  # a class folder without a single image
            raise UserError(f"{self.root}: {first_line(exc)}") from None


def _decodes(path: Path) -> str:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
    except Exception as exc:  # Pillow's decoders raise OSError, ValueError, SyntaxError, struct.error, ...
        raise _unreadable(path, exc) from None
    return "yes"


def _unreadable(path: str | Path, exc: Exception) -> UserError:
    return UserError(f"{path} cannot be read as an image ({first_line(exc)}): fix or remove it")


_WIDE_GREY = ("I", "I;16", "I;16B", "I;16L", "I;16N")  # Pillow's modes for 16-bit (and 32-bit) grey images


def _open(path: str, channels: int, size: int) -> torch.Tensor:
    """One image as (channels, size, size) floats in [0, 1]. 16-bit grey PNGs are scaled by 65535: Pillow's
    convert("L") would clip them to 0/255 instead."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode not in _WIDE_GREY:
                return TF.to_tensor(TF.resize(im.convert("L" if channels == 1 else "RGB"), [size, size],
                                              antialias=True))
            wide = np.asarray(im).astype(np.float32)
    except Exception as exc:  # as in _decodes: the API's load reads the images without the CLI's check first
        raise _unreadable(path, exc) from None
    scale = 65535.0 if im.mode != "I" or wide.max() > 255 else 255.0  # mode I: 16-bit PNGs, or 8-bit values
    grey = torch.from_numpy(wide / scale).clamp_(0.0, 1.0)[None]
    return TF.resize(grey.expand(channels, -1, -1), [size, size], antialias=True)
