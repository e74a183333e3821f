"""Read MNIST-format IDX files in place, gzipped or not.

torchvision's MNIST class extracts the .gz files next to themselves, which fails on a read-only data
folder (ours is one); its own `read_sn3_pascalvincent_tensor` reads only uncompressed files. So the
reading is done here, from either form, without writing anything.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def find_idx(raw_dir: Path, stem: str) -> Path | None:
    """The file `stem` or `stem.gz` in raw_dir, whichever exists (uncompressed first)."""
    for candidate in (raw_dir / stem, raw_dir / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise ValueError(f"{path} is not an IDX file")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    array = np.frombuffer(bytearray(data), dtype=_DTYPES[data[2]], offset=offset)  # writable, for torch
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: expected {int(np.prod(shape))} values, found {array.size}")
    return array.reshape(shape)
