"""Datasets for the Python API: your own arrays, or one of xai's datasets by name.

    >>> import xai_cli as xai
    >>> data = xai.datasets.load("digits")
    >>> data.summary()["sizes"]
    {'train': 1257, 'val': 180, 'test': 360}
"""

from __future__ import annotations

from typing import Any, Sequence

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from xai_cli.config import CONFIG_DIR, compose
from xai_cli.data.arrays import ArraysDataModule
from xai_cli.data.base import ArrayDataModule
from xai_cli.errors import UserError, user_errors_unwrapped

__all__ = ["ArrayDataModule", "from_arrays", "load", "names"]


def names() -> list[str]:
    """The datasets `load` knows (one YAML file each under configs/dataset/)."""
    return sorted(p.stem for p in (CONFIG_DIR / "dataset").glob("*.yaml"))


def from_arrays(x_train: Any, y_train: Any, x_test: Any, y_test: Any, x_val: Any = None, y_val: Any = None, *,
                class_names: Sequence[str] | None = None, name: str = "arrays", val_size: float = 0.1,
                split_seed: int = 0, batch_size: int = 64) -> ArraysDataModule:
    """A dataset from arrays you already have.

    Args:
        x_train, x_test, x_val: images (N,H,W), (N,H,W,C) or (N,C,H,W) as uint8 or floats in [0, 1], or
            features (N,D); numpy arrays or torch tensors. Normalisation (mean/std) belongs inside the model.
        y_train, y_test, y_val: class indices 0..K-1.
        class_names: K names shown in reports (default "0".."K-1").
        name: what reports call the dataset.
        val_size: share of train held out for validation when x_val/y_val are not given (stratified).
        split_seed: seeds that hold-out.
        batch_size: training batch size.

    Returns:
        A Lightning DataModule whose model-store identity is the sha256 of the arrays.

    Example:
        >>> import numpy as np, xai_cli as xai
        >>> x = np.random.default_rng(0).random((60, 28, 28), dtype=np.float32)
        >>> y = np.arange(60) % 3
        >>> data = xai.datasets.from_arrays(x[:40], y[:40], x[40:], y[40:], class_names=["a", "b", "c"])
        >>> data.input_shape, data.num_classes
        ((1, 28, 28), 3)
    """
    data = ArraysDataModule(x_train, y_train, x_test, y_test, x_val, y_val, class_names=class_names, name=name,
                            val_size=val_size, split_seed=split_seed, batch_size=batch_size)
    data.setup()
    return data


def load(name: str, data_dir: str | None = None, **settings: Any) -> ArrayDataModule:
    """One of xai's datasets, configured exactly as `xai <command> dataset=<name>` would configure it.

    Args:
        name: a dataset option (`xai_cli.datasets.names()`): digits, mnist, fashion_mnist, npz, image_folder, ...
        data_dir: where torchvision-layout data lives (the CLI's `paths.data_dir`).
        **settings: the dataset's own settings (`file=...`, `num_classes=...`, `image_size=32`, ...).

    Returns:
        A set-up DataModule. Models trained on it share store entries with the CLI's.

    Example:
        >>> import xai_cli as xai
        >>> xai.datasets.load("digits", image_size=32).input_shape
        (1, 32, 32)
    """
    with user_errors_unwrapped():  # a resolver's or a constructor's UserError arrives wrapped by OmegaConf or Hydra
        return build(dataset_config(name, data_dir, **settings))


def dataset_config(name: str, data_dir: str | None = None, **settings: Any) -> DictConfig:
    """The dataset's config resolved against the default paths (and `data_dir`), with `settings` merged."""
    if name not in names():
        raise UserError(f"unknown dataset {name!r}; choose one of {', '.join(names())}")
    overrides = [f"dataset={name}"] + ([f"paths.data_dir={data_dir}"] if data_dir else [])
    cfg = compose("train", overrides)
    OmegaConf.set_struct(cfg, False)
    unknown = sorted(set(settings) - set(cfg.dataset))
    if unknown:
        raise UserError(f"dataset {name} has no setting {', '.join(unknown)}; its settings: "
                        f"{', '.join(k for k in cfg.dataset if k != '_target_')}")
    cfg.dataset = OmegaConf.merge(cfg.dataset, settings)
    missing = sorted(k for k in cfg.dataset if OmegaConf.is_missing(cfg.dataset, k))
    if missing:
        raise UserError(f"dataset {name} needs {', '.join(f'{k}=...' for k in missing)}")
    return OmegaConf.create(OmegaConf.to_container(cfg.dataset, resolve=True))


def build(dataset_cfg: DictConfig) -> ArrayDataModule:
    """Instantiate a dataset config and load its splits; the module remembers its config (its store identity)."""
    data: ArrayDataModule = instantiate(dataset_cfg)
    data.config = dataset_cfg
    data.setup()
    return data
