"""Shared fixtures. Configs are the real ones from configs/; data is embedded, made here, or ../shared/data."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from omegaconf import DictConfig

from xai_cli.config import compose

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / "configs"
SHARED_DATA = REPO.parent / "shared" / "data"  # read-only; tests copy what they need into tmp dirs

# Smallest training that still exercises every stage: one epoch of three batches.
FAST = ["trainer.max_epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=1"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--cluster", action="store_true",
                     help="run tests/cluster against a one-node Slurm started for the session (make test-cluster)")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The cluster stage (minutes, root, Debian's Slurm) runs only when asked for, after the main suite."""
    if collection_path.name == "cluster" and collection_path.parent == REPO / "tests":
        return not config.getoption("--cluster")
    return None


def compose_config(command: str = "train", overrides: list[str] | None = None) -> DictConfig:
    """The real composed config of a command (no run directory, no Hydra runtime)."""
    return compose(command, overrides or [])


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write an IDX (MNIST format) gzip file: the inverse of xai_cli.data.idx.read_idx for uint8."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def require_shared_mnist() -> Path:
    raw = SHARED_DATA / "MNIST" / "raw"
    if not (raw / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST not found in {raw}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def mnist_slice_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data_dir holding the first 2,000 training and 500 test images of real MNIST, in MNIST's own format."""
    from xai_cli.data.idx import read_idx

    shared_raw = require_shared_mnist() / "MNIST" / "raw"
    root = tmp_path_factory.mktemp("mnist_slice")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 2000), ("t10k", 500)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", read_idx(shared_raw / f"{prefix}-images-idx3-ubyte.gz")[:n])
        write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", read_idx(shared_raw / f"{prefix}-labels-idx1-ubyte.gz")[:n])
    return root


def xai_command() -> list[str]:
    exe = shutil.which("xai")
    return [exe] if exe else [sys.executable, "-m", "xai_cli.cli"]


def xai_env(root: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a user's `xai` run with everything under `root` (no terminal: CI=1)."""
    env = {**(base or os.environ), "CI": "1", "XAI_ROOT": str(root)}
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def run_xai(*args: str, root: Path, timeout: int = 600,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real `xai` executable as a user would, with everything under `root` (`env`: the base
    environment, e.g. a test cluster's)."""
    return subprocess.run([*xai_command(), *args], cwd=root, env=xai_env(root, env), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def run_dirs(root: Path, command: str = "train") -> list[Path]:
    base = root / "outputs" / command
    return sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []


def only_run_dir(root: Path, command: str = "train") -> Path:
    dirs = run_dirs(root, command)
    assert len(dirs) == 1, dirs
    return dirs[0]


def load_json(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture
def xai_root(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


# --- a user's own data: a real colour set built from the embedded digits (scripts/coloured_digits.py) ----------
sys.path.insert(0, str(REPO / "scripts"))
from coloured_digits import DIGIT_NAMES, coloured_digits, write_image_folder, write_npz  # noqa: E402

__all__ = ["DIGIT_NAMES", "coloured_digits", "write_image_folder", "write_npz"]


@pytest.fixture(scope="session")
def user_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """The overrides that point the user-data datasets (npz, image_folder) at real files of three classes."""
    root = tmp_path_factory.mktemp("user_data")
    folder = write_image_folder(root / "folder", per_class=12, size=28)
    npz = write_npz(root / "digits3.npz", per_class=12, size=28)
    return {"npz": [f"dataset.file={npz}"], "image_folder": [f"dataset.root={folder}"]}
