"""Build Lightning Trainers from the `trainer` config group, with progress that fits the terminal."""

from __future__ import annotations

import logging
import os
import tempfile
import time
import warnings
from typing import Any

import lightning.pytorch as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from xai_cli.utils.progress import interactive

log = logging.getLogger("xai")

# Lightning announces hardware and tips at INFO on every fit; keep run logs about the run.
for _name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda",
              "lightning.fabric.utilities.seed", "lightning.pytorch.utilities.seed"):
    logging.getLogger(_name).setLevel(logging.WARNING)
# Advice that does not apply here: our data sits in memory (no workers needed), and a pytree deprecation
# inside Lightning itself.
warnings.filterwarnings("ignore", ".*does not have many workers.*")
warnings.filterwarnings("ignore", ".*LeafSpec.*")
# GAN checkpoints hold the state after a step's updates, which is what resuming wants
warnings.filterwarnings("ignore", ".*ModelCheckpoint with manual optimization.*")
# On a machine with Slurm installed, Lightning suggests `srun` on every run; outside a Slurm job it never applies.
if "SLURM_JOB_ID" not in os.environ:
    warnings.filterwarnings("ignore", ".*The `srun` command is available on your system but is not used.*")


class EpochLines(L.Callback):
    """One log line per epoch where no live bar can be drawn (CI, pipes, log files)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._start = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # runs after the epoch's validation, once the epoch-mean loss exists
        m = trainer.callback_metrics
        shown = {"loss": m.get("loss_epoch"), **{k: v for k, v in m.items() if k.startswith("val_")}}
        values = "  ".join(f"{k} {float(v):.4f}" for k, v in shown.items() if v is not None)
        log.info("%s epoch %d/%d  %s  (%.1f s)", self.label, trainer.current_epoch + 1, trainer.max_epochs,
                 values, time.perf_counter() - self._start)


def build_trainer(trainer_cfg: DictConfig, epochs: int, label: str, **overrides: Any) -> L.Trainer:
    """A Trainer from the config; the store keeps the weights, so no checkpoints or loggers here. `overrides`
    replace any setting, e.g. a step budget and callbacks of the caller's own."""
    settings: dict[str, Any] = {
        "max_epochs": trainer_cfg.get("max_epochs") or epochs,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": interactive(),
        "callbacks": [] if interactive() else [EpochLines(label)],
        "default_root_dir": tempfile.gettempdir(),
    }
    return instantiate(trainer_cfg, **{**settings, **overrides})
