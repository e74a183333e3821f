"""The in-memory DataModule every dataset builds on.

All our datasets fit in RAM (full MNIST is 47 MB as uint8), so each module loads its arrays once and
serves batches by fancy-indexing a tensor: exact splits, no worker processes (which crash under the
joblib launcher), and no per-sample collate cost, which would otherwise dominate a small CNN's step.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import lightning.pytorch as L
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from sklearn.model_selection import train_test_split
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from xai_cli.errors import UserError
from xai_cli.utils.hashing import HashCache, content_sha256

SplitName = Literal["train", "val", "test"]
SPLITS: tuple[SplitName, ...] = ("train", "val", "test")


@dataclass
class Split:
    """One split: inputs (N, C, H, W) or (N, D) float32, labels (N,) int64, and per-image extras."""

    x: torch.Tensor
    y: torch.Tensor
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)


class _BatchIndexed(Dataset):
    """A dataset indexed by a whole list of positions at once (one tensor gather per batch)."""

    def __init__(self, split: Split) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(idx)
        return self.split.x[index], self.split.y[index]


class ArrayDataModule(L.LightningDataModule):
    """Base class: subclasses implement `load_splits`; everything else is shared."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        batch_size: int = 128,
        split_seed: int = 0,
        num_workers: int = 0,
        class_names: Sequence[str] | None = None,
        **_: object,  # remaining config keys (e.g. `channels`) are read by the subclass or documentation only
    ) -> None:
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_classes = int(num_classes)
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise UserError(f"dataset.batch_size must be at least 1, got {self.batch_size}")
        self.split_seed = int(split_seed)
        self.num_workers = int(num_workers)
        self.class_names = [str(c) for c in class_names] if class_names else [str(i) for i in range(self.num_classes)]
        if len(set(self.class_names)) < len(self.class_names):  # reports key tables and figures by name
            raise UserError(f"dataset.class_names must differ from each other, got {self.class_names}")
        self._splits: dict[str, Split] | None = None
        self._loader_seed = 0
        # the dataset config this module was built from (set by whoever instantiated it from one)
        self.config: DictConfig | None = None

    # --- what a subclass provides -------------------------------------------------------------------
    @property
    def name(self) -> str:
        return type(self).__name__.removesuffix("DataModule").lower()

    @abstractmethod
    def load_splits(self) -> dict[str, Split]:
        """Return train/val/test splits as float tensors in the configured shape."""

    def check(self) -> None:
        """Raise UserError if the data cannot make a valid set (bad labels, pixels that are not numbers), for
        sets read from a user's files; cheaper than `setup`, and run before a run directory exists."""

    # --- shared machinery ---------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self._splits is None:
            splits = self.load_splits()
            for name, split in splits.items():
                got = tuple(split.x.shape[1:])
                if got != self.input_shape:
                    raise ValueError(f"{self.name}: {name} inputs have shape {got}, config says {self.input_shape}")
            self._splits = splits

    def split(self, name: SplitName) -> Split:
        self.setup()
        assert self._splits is not None
        return self._splits[name]

    def set_loader_seed(self, seed: int) -> None:
        """Seed the training data order (kept apart from model init so each can be varied alone)."""
        self._loader_seed = int(seed)

    def loader(self, name: SplitName, shuffle: bool = False, batch_size: int | None = None) -> DataLoader:
        data = _BatchIndexed(self.split(name))
        bs = batch_size or self.batch_size
        if getattr(self.trainer, "overfit_batches", 0):
            # Lightning's overfit_batches (debug=overfit) keeps a loader only if its sampler is a plain
            # SequentialSampler, and otherwise swaps one in that our batch-indexed loader cannot take
            return DataLoader(data, batch_size=bs, shuffle=False, num_workers=self.num_workers)
        if shuffle:
            gen = torch.Generator().manual_seed(self._loader_seed)
            sampler = BatchSampler(RandomSampler(data, generator=gen), bs, drop_last=False)
        else:
            sampler = BatchSampler(SequentialSampler(data), bs, drop_last=False)
        # batch_size=None: the sampler already yields whole batches of indices
        return DataLoader(data, sampler=sampler, batch_size=None, num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test")

    def store_identity(self) -> DictConfig | dict[str, Any]:
        """What the model store keys models trained on this data by: the dataset config it was built from."""
        if self.config is None:
            raise ValueError(f"{self.name}: built without a config; set `config` or override store_identity()")
        return self.config

    def summary(self) -> dict[str, object]:
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "sizes": {s: len(self.split(s)) for s in SPLITS},
        }


class ImageSetDataModule(ArrayDataModule):
    """One labelled set of images, brought to `image_size` x `image_size` with `channels`, split three ways.

    A set read from a user's files is known to the model store by their content, not their location
    (`location_keys` name the settings that say where they are): a rewritten file gets new models, and
    the same files moved elsewhere keep theirs. Hashes are cached in `cache_dir` by path, size and mtime.
    """

    location_keys: tuple[str, ...] = ()

    def __init__(self, image_size: int = 28, channels: int = 1, test_size: float = 0.2, val_size: float = 0.1,
                 cache_dir: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.image_size, self.channels = int(image_size), int(channels)
        self.test_size, self.val_size = float(test_size), float(val_size)
        if self.image_size < 1:
            raise UserError(f"dataset.image_size must be a positive number of pixels, got {self.image_size}")
        if self.channels not in (1, 3):
            raise UserError(f"dataset.channels must be 1 (grey) or 3 (colour), got {self.channels}")
        if not (0 < self.test_size < 1 and 0 < self.val_size < 1 and self.test_size + self.val_size < 1):
            raise UserError(f"dataset.test_size and dataset.val_size are shares of the images: each in (0, 1), "
                            f"together below 1, got {self.test_size} and {self.val_size}")
        self.cache_dir = None if cache_dir is None else Path(cache_dir).expanduser()
        self._identity: dict[str, Any] | None = None

    def content_files(self) -> tuple[Path, list[Path]] | None:
        """(root, the files the images are read from), for sets read from a user's files."""
        return None

    def hash_cache(self) -> HashCache:
        """What is known of the user's files by path, size and mtime (hashes, verdicts), kept in cache_dir."""
        return HashCache(self.cache_dir / "content_hashes.json" if self.cache_dir else None)

    def store_identity(self) -> DictConfig | dict[str, Any]:
        located = self.content_files()
        if located is None:
            return super().store_identity()
        if self._identity is None:
            identity = super().store_identity()
            plain = dict(OmegaConf.to_container(identity, resolve=True) if isinstance(identity, DictConfig)
                         else identity)
            for key in (*self.location_keys, "cache_dir"):
                plain.pop(key, None)
            plain["content_sha256"] = content_sha256(located[1], located[0], self.hash_cache())
            self._identity = plain
        return self._identity

    def three_way(self, x: np.ndarray, y: np.ndarray) -> dict[str, Split]:
        parts = stratified_three_way(x, y, self.test_size, self.val_size, self.split_seed)
        return {name: to_split(xs, ys) for name, (xs, ys) in parts.items()}


def stratified_three_way(
    x: np.ndarray, y: np.ndarray, test_size: float, val_size: float, seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Split one labelled set into train/val/test, stratified; sizes are shares of the whole set."""
    try:
        x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=test_size, random_state=seed, stratify=y)
        val_share = val_size / (1.0 - test_size)
        x_train, x_val, y_train, y_val = train_test_split(
            x_rest, y_rest, test_size=val_share, random_state=seed, stratify=y_rest
        )
    except ValueError as exc:  # e.g. a class with fewer images than the splits need
        raise UserError(f"cannot split {len(y)} images into train/val/test with every class in each "
                        f"(dataset.test_size={test_size}, dataset.val_size={val_size}): {exc}") from None
    return {"train": (x_train, y_train), "val": (x_val, y_val), "test": (x_test, y_test)}


def hold_out_val(
    x: np.ndarray, y: np.ndarray, val_size: float | int, seed: int
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Split a training set into (train, val), stratified; val_size is a share (<1) or a count."""
    x_tr, x_val, y_tr, y_val = train_test_split(x, y, test_size=val_size, random_state=seed, stratify=y)
    return (x_tr, y_tr), (x_val, y_val)


def to_split(x: np.ndarray, y: np.ndarray, **extras: np.ndarray) -> Split:
    return Split(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64), dict(extras))
