"""Datasets: one LightningDataModule per source, all held in memory as float tensors in [0, 1]."""

from xai_cli.data.base import ArrayDataModule, Split

__all__ = ["ArrayDataModule", "Split"]
