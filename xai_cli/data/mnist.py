"""MNIST, Fashion-MNIST and corrupted MNIST from torchvision's file layout under `data_dir`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torchvision
from sklearn.model_selection import train_test_split

from xai_cli.data.base import ArrayDataModule, Split, to_split
from xai_cli.data.corruptions import CORRUPTION_KINDS, corrupt
from xai_cli.data.idx import find_idx, read_idx
from xai_cli.data.images import to_nchw
from xai_cli.errors import UserError

log = logging.getLogger(__name__)

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class MNISTDataModule(ArrayDataModule):
    folder = "MNIST"  # torchvision's folder name under data_dir
    torchvision_dataset = torchvision.datasets.MNIST
    default_class_names: list[str] | None = None  # digits 0-9

    def __init__(
        self, data_dir: str, download: bool = True, channels: int = 1, val_size: int | float = 5000, **kwargs: Any
    ) -> None:
        kwargs.setdefault("class_names", self.default_class_names)
        super().__init__(**kwargs)
        self.data_dir = Path(data_dir).expanduser()
        self.download = download
        self.channels = channels
        self.val_size = val_size

    @property
    def name(self) -> str:
        return self.folder.lower().replace("fashionmnist", "fashion_mnist")

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / self.folder / "raw"

    def _missing(self) -> list[str]:
        return [stem for pair in _FILES.values() for stem in pair if find_idx(self.raw_dir, stem) is None]

    def _ensure_files(self) -> None:
        missing = self._missing()
        if missing and self.download:
            log.info("%s files missing in %s: downloading with torchvision", self.folder, self.raw_dir)
            try:
                self.torchvision_dataset(root=str(self.data_dir), train=True, download=True)
            except Exception as exc:  # no network, read-only folder, mirror down...
                log.debug("download failed", exc_info=True)
                reason = f"download failed: {str(exc).splitlines()[0][:120]}"
            else:
                reason = ""
            missing = self._missing()
        else:
            reason = "download=false"
        if missing:
            names = ", ".join(f"{m}.gz" for m in missing)
            raise UserError(
                f"{self.folder} not found ({reason}): put {names} in {self.raw_dir}/ "
                f"or point paths.data_dir at the folder that holds {self.folder}/raw/"
            )

    def load_raw(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        self._ensure_files()
        out = {}
        for split, (img_stem, lbl_stem) in _FILES.items():
            images = read_idx(find_idx(self.raw_dir, img_stem))  # type: ignore[arg-type]
            labels = read_idx(find_idx(self.raw_dir, lbl_stem))  # type: ignore[arg-type]
            if len(images) != len(labels):
                raise UserError(f"{self.raw_dir}: {img_stem} has {len(images)} images but {lbl_stem} {len(labels)} labels")
            out[split] = (images, labels.astype(np.int64))
        return out

    def extras_for(self, split: str, images: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Hook for subclasses that alter images per source index (corruptions); identity here."""
        return images, {}

    def load_splits(self) -> dict[str, Split]:
        raw = self.load_raw()
        splits: dict[str, Split] = {}
        for source in ("train", "test"):
            images, labels = raw[source]
            x = to_nchw(images, self.channels, None).numpy()
            x, extras = self.extras_for(source, x)
            extras["index"] = np.arange(len(labels))  # position in the original file
            if source == "test":
                splits["test"] = to_split(x, labels, **extras)
                continue
            tr, va = train_test_split(
                np.arange(len(labels)), test_size=self.val_size, random_state=self.split_seed, stratify=labels
            )
            for name, idx in (("train", np.sort(tr)), ("val", np.sort(va))):
                splits[name] = to_split(x[idx], labels[idx], **{k: v[idx] for k, v in extras.items()})
        return splits


class FashionMNISTDataModule(MNISTDataModule):
    folder = "FashionMNIST"
    torchvision_dataset = torchvision.datasets.FashionMNIST
    default_class_names = list(torchvision.datasets.FashionMNIST.classes)


class CorruptedMNISTDataModule(MNISTDataModule):
    """MNIST with a fixed random share of each source file blurred or noised (see configs/dataset)."""

    def __init__(
        self,
        corrupted_fraction: float = 0.5,
        corruption_seed: int = 0,
        noise_sigmas: Sequence[float] = (0.25, 0.4, 0.6, 0.8, 1.0),
        blur_sigmas: Sequence[float] = (1.0, 2.0, 3.0, 4.0, 6.0),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.corrupted_fraction = corrupted_fraction
        self.corruption_seed = corruption_seed
        self.noise_sigmas = list(noise_sigmas)
        self.blur_sigmas = list(blur_sigmas)

    @property
    def name(self) -> str:
        return "mnist_corrupted"

    def extras_for(self, split: str, images: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        stream = 0 if split == "train" else 1  # the two source files get independent draws
        x, kind, severity = corrupt(
            images, self.corruption_seed, stream, self.corrupted_fraction, self.noise_sigmas, self.blur_sigmas
        )
        return x, {"corruption": kind, "severity": severity}

    def summary(self) -> dict[str, object]:
        out = super().summary()
        out["corruption_kinds"] = list(CORRUPTION_KINDS)
        return out
