"""Build Lightning Trainers from the `trainer` config group, with progress that fits the terminal."""

from __future__ import annotations

import logging
import os
import signal
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Sequence

import lightning.pytorch as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from xai_cli.tracking import active
from xai_cli.training.parallel import check_parallel, cluster_plugins, world_size
from xai_cli.utils.progress import interactive, progress_bar

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
    """One log line per epoch where no live bar can be drawn (CI, pipes, log files), from rank 0 only.

    Workers that ddp_spawn starts are fresh interpreters without the run's logging; they log to the same
    console and run log, which this callback notes where it is made (the main process)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._start = 0.0
        self._log_files = [h.baseFilename for h in (*log.handlers, *logging.getLogger().handlers)
                           if isinstance(h, logging.FileHandler)]

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.is_global_zero and not log.hasHandlers():  # a spawned worker
            formatter = logging.Formatter("[%(asctime)s] %(message)s", "%H:%M:%S")
            for handler in [logging.StreamHandler(), *(logging.FileHandler(f) for f in self._log_files)]:
                handler.setFormatter(formatter)
                log.addHandler(handler)
            log.setLevel(logging.INFO)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # runs after the epoch's validation, once the epoch-mean loss exists
        if not trainer.is_global_zero:
            return
        m = trainer.callback_metrics
        shown = {"loss": m.get("loss_epoch"), **{k: v for k, v in m.items() if k.startswith("val_")}}
        values = "  ".join(f"{k} {float(v):.4f}" for k, v in shown.items() if v is not None)
        log.info("%s epoch %d/%d  %s  (%.1f s)", self.label, trainer.current_epoch + 1, trainer.max_epochs,
                 values, time.perf_counter() - self._start)


class FitBar(L.Callback):
    """In a terminal: the fit's batches as one task on the shared live display (xai_cli.utils.progress), the
    epoch and the running losses in its description. Lightning's own bar would start a second live display
    inside ours, which rich cannot nest (a consistency run crashed that way).

    `total` batches (default: every epoch's); `steps_per_batch` is how far Lightning's global step moves per
    batch (2 for the GAN's two optimisers), to start a resumed fit where it stopped."""

    def __init__(self, label: str, total: int | None = None, steps_per_batch: int = 1) -> None:
        self.label, self.total, self.steps_per_batch = label, total, steps_per_batch
        self._bar: Any = None
        self._advance: Any = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        total = self.total
        if total is None and trainer.max_epochs and trainer.max_epochs > 0:
            per_epoch = trainer.num_training_batches
            total = int(trainer.max_epochs * per_epoch) if per_epoch != float("inf") else None
        self._bar = progress_bar(self.label, total)
        self._advance = self._bar.__enter__()
        self._advance(trainer.global_step // self.steps_per_batch)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if self._advance is None:
            return
        epochs = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        values = "  ".join(f"{k} {float(v):.3f}" for k, v in list(trainer.progress_bar_metrics.items())[:3])
        self._advance(1, description=f"{self.label} epoch {trainer.current_epoch + 1}{epochs}  {values}")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self._bar is not None:
            bar, self._bar, self._advance = self._bar, None, None
            bar.__exit__(None, None, None)


class FitRecord(L.Callback):
    """Epochs and steps run, as callback metrics: the one record that ddp_spawn's workers send back to the
    main process, whose own trainer never ran a loop (its counters stay 0)."""

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.callback_metrics["fit_epochs"] = torch.tensor(trainer.current_epoch)
        trainer.callback_metrics["fit_steps"] = torch.tensor(trainer.global_step)


class CloseProcessGroup(L.Callback):
    """Data-parallel workers wait for each other after a fit and close their process group while Python is
    whole. Left to interpreter shutdown, a gloo thread may still hold work whose tensors need the GIL then:
    a worker aborted that way once in CI (SIGABRT, `terminate called without an active exception`)."""

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()


def fit_record(trainer: L.Trainer) -> dict[str, int]:
    """Epochs and steps of the last fit, wherever it ran."""
    m = trainer.callback_metrics
    return {"epochs": int(m.get("fit_epochs", trainer.current_epoch)),
            "steps": int(m.get("fit_steps", trainer.global_step))}


@contextmanager
def ctrl_c_passes_through() -> Iterator[None]:
    """Lightning turns Ctrl-C during a fit into `sys.exit(1)` and ignores any further one: hand it on as the
    KeyboardInterrupt it was (the CLI then says `interrupted` and exits 130) and give Ctrl-C back."""
    handler = signal.getsignal(signal.SIGINT)
    try:
        yield
    except SystemExit as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        raise
    finally:
        if threading.current_thread() is threading.main_thread() and handler is not None:
            signal.signal(signal.SIGINT, handler)


def fit_progress(label: str = "") -> L.Callback:
    """The `progress` callback: a bar on the shared live display in a terminal, a line per epoch elsewhere."""
    return FitBar(label) if interactive() else EpochLines(label)


def configured_callbacks(trainer_cfg: DictConfig, label: str) -> list[L.Callback]:
    """The `callbacks` group's callbacks (carried in the trainer's config; progress alone when it has none),
    each told the fit's label; a ModelCheckpoint without a folder writes to <run dir>/checkpoints/<label>."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    nodes = trainer_cfg.get("callbacks")
    if nodes is None:
        return [fit_progress(label)]
    callbacks = [instantiate(node) for node in nodes.values() if node is not None]
    for callback in callbacks:
        if getattr(callback, "label", None) == "":
            callback.label = label  # type: ignore[attr-defined]
        if isinstance(callback, ModelCheckpoint) and callback.dirpath is None:
            callback.dirpath = str(_run_dir() / "checkpoints" / label)
    return callbacks


def _run_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path.cwd()


def build_trainer(trainer_cfg: DictConfig, epochs: int, label: str, also: Sequence[L.Callback] = (),
                  **overrides: Any) -> L.Trainer:
    """A Trainer from the config; the store keeps the weights and the callbacks group says what else runs
    (progress by default; early stopping, checkpoints); `also` adds callbacks of the caller's. `overrides`
    replace any setting, e.g. a step budget or all the callbacks."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    check_parallel(trainer_cfg)
    callbacks = [FitRecord(), CloseProcessGroup(), *configured_callbacks(trainer_cfg, label), *also]
    settings: dict[str, Any] = {
        "max_epochs": trainer_cfg.get("max_epochs") or epochs,
        "logger": False,
        "enable_checkpointing": any(isinstance(c, ModelCheckpoint) for c in callbacks),
        "enable_progress_bar": False,  # ours (FitBar) shares the one live display with every other loop
        "callbacks": callbacks,
        "default_root_dir": tempfile.gettempdir(),
    }
    if not trainer_cfg.get("plugins"):
        settings["plugins"] = cluster_plugins(trainer_cfg)
    tracking = active()
    if tracking is not None:
        if world_size(trainer_cfg) == 1:
            settings["logger"] = tracking.fit_loggers(label)
        else:  # spawned workers would each need their own connection to the tracker
            log.info("%s: trained by %d processes; its curves are not tracked (the run's numbers are)", label,
                     world_size(trainer_cfg))
    if "callbacks" in trainer_cfg:  # the group's configs, instantiated above: the Trainer takes the objects
        trainer_cfg = OmegaConf.create({k: v for k, v in OmegaConf.to_container(trainer_cfg, resolve=True).items()
                                        if k != "callbacks"})
    return instantiate(trainer_cfg, **{**settings, **overrides})
