"""Reading a user's .npz archive: plain arrays only (nothing pickled is ever loaded), and a message of our own
when the file is not one."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from xai_cli.errors import UserError


def read_npz(path: Path, wanted: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """The archive's arrays (only those named in `wanted`, if given, that it holds)."""
    if not zipfile.is_zipfile(path):  # a text file, an empty one, a single .npy: numpy's own errors mislead
        raise UserError(f"{path.name} is not an .npz archive (write one with numpy.savez(path, x=..., y=...))")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {k: archive[k] for k in archive.files if wanted is None or k in wanted}
    except ValueError:  # numpy suggests allow_pickle=True here, which would let the file run code
        raise UserError(f"{path.name} holds object arrays, which only pickle can read and xai never loads: "
                        "save plain numeric arrays (and class_names as strings)") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise UserError(f"{path.name} is not a readable .npz archive: {exc}") from None
