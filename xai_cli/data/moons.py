"""scikit-learn's two moons: 2-D points, the toy case for the uncertainty GAN and tabular DIG."""

from __future__ import annotations

from typing import Any

from sklearn.datasets import make_moons

from xai_cli.data.base import ArrayDataModule, Split, stratified_three_way, to_split


class MoonsDataModule(ArrayDataModule):
    def __init__(
        self, n_samples: int = 3000, noise: float = 0.3, test_size: float = 0.2, val_size: float = 0.1, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.n_samples, self.noise = n_samples, noise
        self.test_size, self.val_size = test_size, val_size

    @property
    def name(self) -> str:
        return "moons"

    def load_splits(self) -> dict[str, Split]:
        x, y = make_moons(n_samples=self.n_samples, noise=self.noise, random_state=self.split_seed)
        parts = stratified_three_way(x.astype("float32"), y, self.test_size, self.val_size, self.split_seed)
        return {name: to_split(xs, ys) for name, (xs, ys) in parts.items()}
