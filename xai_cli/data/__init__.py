"""Datasets: one LightningDataModule per source, all held in memory as float tensors in [0, 1].

The base classes load lazily: the config layer imports `xai_cli.data.classes` without pulling in Lightning.
"""

from typing import Any

__all__ = ["ArrayDataModule", "Split"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from xai_cli.data import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
