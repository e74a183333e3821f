"""The classes of a user's dataset, read from the data itself: folder names, or an npz's labels.

Model configs size their heads with `${dataset.num_classes}`, which Hydra resolves before any image is read;
these resolvers let a dataset's YAML derive it from the data (`class_names: ${xai.folder_classes:${.root}}`,
`num_classes: ${xai.count:${.class_names}}`), so that a user names a folder or a file and nothing else. A
number the user gives still wins, and the dataset then checks it against what it finds.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from xai_cli.data.archive import read_npz
from xai_cli.errors import UserError


def existing_folder(root: str | Path) -> Path:
    """`root` as a path, or the one line that says which setting names it."""
    path = Path(str(root)).expanduser()
    if not path.is_dir():
        raise UserError(f"image folder not found: {path} (set dataset.root=/path/with/one/folder/per/class)")
    return path


def existing_npz(file: str | Path) -> Path:
    path = Path(str(file)).expanduser()
    if not path.is_file():
        raise UserError(f"dataset file not found: {path} (set dataset.file=/path/to/images.npz)")
    return path


def folder_classes(root: str) -> list[str]:
    """Sorted names of the class folders under `root` (torchvision ImageFolder's classes)."""
    path = existing_folder(root)
    names = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise UserError(f"{path} holds no class folders; put each class's images in root/<class name>/")
    return names


def npz_classes(file: str) -> list[str]:
    """An npz's `class_names` array if it has one, else "0".."K-1" for labels up to K-1."""
    path = existing_npz(file)
    stat = path.stat()
    return list(_npz_classes(str(path.resolve()), stat.st_size, stat.st_mtime_ns))


@functools.lru_cache(maxsize=32)
def _npz_classes(path: str, size: int, mtime_ns: int) -> tuple[str, ...]:
    """Cached by path, size and modification time: configs resolve `num_classes` many times per run."""
    arrays = read_npz(Path(path), ("class_names", "y", "y_train", "y_val", "y_test"))
    if "class_names" in arrays:
        return tuple(str(c) for c in arrays["class_names"].ravel())
    labels = list(arrays.values())
    if not labels:
        raise UserError(f"{path} holds no labels (y, or y_train/y_test) to count classes from")
    try:
        top = max(int(np.max(y)) for y in labels if np.size(y))
    except (ValueError, TypeError, OverflowError):  # text, NaN or infinite labels
        raise UserError(f"{Path(path).name}: labels must be class indices 0..K-1 (names go in a class_names "
                        "array)") from None
    return tuple(str(i) for i in range(top + 1))


def count(items: Sequence[Any] | None) -> int | None:
    return None if items is None else len(items)
