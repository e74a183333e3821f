"""How each model family is trained, selected by the classifier config's `fit._target_`."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn
from torch.optim import Optimizer

from xai_cli.data.base import ArrayDataModule
from xai_cli.models.classifiers.base import TorchClassifier
from xai_cli.models.classifiers.sklearn_models import SklearnClassifier
from xai_cli.training.module import TrainingModule
from xai_cli.training.parallel import effective_precision, world_size
from xai_cli.training.snapshots import EpochSnapshots
from xai_cli.training.trainer import build_trainer, ctrl_c_passes_through, fit_record

log = logging.getLogger("xai")


@dataclass(frozen=True)
class Seeds:
    """The three sources of training randomness, each with its own seed so that one can vary alone.

    `init`: initial weights; `order`: the order (and, for subset-trained models, the choice) of the
    training examples; `dropout`: the random stream dropout masks are drawn from. A fit config without
    `seeds` uses the run's seed for init and order and draws dropout from wherever initialisation left
    the generator (so existing models keep their weights); with `seeds`, each source is pinned.
    """

    init: int
    order: int
    dropout: int | None

    @classmethod
    def of(cls, seeds: Mapping[str, int] | None, seed: int) -> "Seeds":
        if not seeds:
            return cls(int(seed), int(seed), None)
        return cls(int(seeds.get("init", seed)), int(seeds.get("order", seed)), int(seeds.get("dropout", seed)))


@dataclass
class FitResult:
    train_time_s: float
    details: dict[str, Any] = field(default_factory=dict)
    snapshots: list[tuple[int, dict[str, torch.Tensor]]] = field(default_factory=list)  # (epoch, state dict)


class LightningFit:
    """Torch models (classifiers, the β-VAE): Lightning with the configured optimiser and schedule.

    `min_train_images` lengthens training on small sets (digits has ~1,300 training images) so that the
    same config trains every dataset to convergence; on MNIST it never applies.
    """

    def __init__(
        self,
        optimizer: Callable[..., Optimizer],
        scheduler: Callable[..., Any] | None = None,
        max_epochs: int = 3,
        min_train_images: int = 0,
        seeds: Mapping[str, int] | None = None,
    ) -> None:
        self.optimizer, self.scheduler = optimizer, scheduler
        self.max_epochs, self.min_train_images = max_epochs, min_train_images
        self.seeds = seeds

    def epochs_for(self, n_train: int) -> int:
        return max(self.max_epochs, math.ceil(self.min_train_images / max(n_train, 1)))

    def fit(self, model: nn.Module, data: ArrayDataModule, trainer_cfg: DictConfig, seed: int,
            label: str) -> FitResult:
        seeds = Seeds.of(self.seeds, seed)
        data.set_loader_seed(seeds.order)
        module = TrainingModule(model, self.optimizer, self.scheduler, label)
        # a classifier's earlier epochs are kept (accuracy matching); spawned workers' copies never return
        snapshots = EpochSnapshots() if isinstance(model, TorchClassifier) and world_size(trainer_cfg) == 1 else None
        trainer = build_trainer(trainer_cfg, self.epochs_for(len(data.split("train"))), label,
                                also=[snapshots] if snapshots else [])
        if seeds.dropout is not None:
            torch.manual_seed(seeds.dropout)  # the loader has its own generator: only dropout draws from this one
        start = time.perf_counter()
        with ctrl_c_passes_through():
            trainer.fit(module, datamodule=data)
        elapsed = time.perf_counter() - start
        model.cpu().eval()
        return FitResult(elapsed, {**fit_record(trainer), "world_size": world_size(trainer_cfg),
                                   "precision": effective_precision(trainer_cfg)},
                         snapshots.states if snapshots else [])


class SklearnFit:
    """scikit-learn models: one `fit` on (a seeded random subset of) the flattened training images.

    `calibration_images`: a calibrated estimator (svm_rbf's Platt scaling) whose subset leaves at least this many
    training images unused is fitted once and calibrated on that many of them, instead of by the estimator's own
    cross-validation (k more fits); smaller sets keep the cross-validation.
    """

    # 1: stored with skops (before: a pickle, which is never read again); 2: the subset is the run seed's for
    # every copy (copies with pinned seeds drew their own subset: other training data, not other randomness);
    # 3: held-out calibration (`calibration_images`)
    store_revision = 3

    def __init__(self, max_train_samples: int | None = None, calibration_images: int | None = None,
                 seeds: Mapping[str, int] | None = None) -> None:
        self.max_train_samples = max_train_samples
        self.calibration_images = calibration_images
        self.seeds = seeds

    def fit(self, model: SklearnClassifier, data: ArrayDataModule, trainer_cfg: DictConfig, seed: int,
            label: str) -> FitResult:
        seeds = Seeds.of(self.seeds, seed)
        split = data.split("train")
        x_all, y_all = split.x.numpy(), split.y.numpy()
        x, y = x_all, y_all
        held_out: np.ndarray | None = None  # the training images calibration is fitted on, if held out
        if self.max_train_samples and len(y) > self.max_train_samples:
            # Which images is the data, not training randomness: the run's seed draws them, so copies that vary
            # the order seed (consistency) see the same images, as retrained nets do, in another order.
            drawn = np.random.default_rng(int(seed)).permutation(len(y))
            idx, rest = np.sort(drawn[: self.max_train_samples]), drawn[self.max_train_samples :]
            if self.calibration_images and model.calibrates and len(rest) >= self.calibration_images:
                held_out = np.sort(rest[: self.calibration_images])
            x, y = x[idx], y[idx]
        if self.seeds:  # pinned seeds: the order seed also permutes the examples (as data order does for nets)
            perm = np.random.default_rng(seeds.order).permutation(len(y))
            x, y = x[perm], y[perm]
        model.set_seed(seeds.init)
        start = time.perf_counter()
        if held_out is not None:
            log.info("%s: fitting on %d training images, calibrating on %d others", label, len(y), len(held_out))
            model.fit_calibrated_on(x, y, x_all[held_out], y_all[held_out])
        else:
            log.info("%s: fitting on %d training images", label, len(y))
            model.fit(x, y)
        elapsed = time.perf_counter() - start
        log.info("%s: fitted in %.1f s", label, elapsed)
        details: dict[str, Any] = {"train_samples": int(len(y))}
        if held_out is not None:
            details["calibration_samples"] = int(len(held_out))
        return FitResult(elapsed, details)
