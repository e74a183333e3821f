"""The model store: trained models (classifiers, generators) keyed by a hash of everything that determines them.

An entry is a folder `<name>-<key16>/` holding `model.bin` and `meta.json` (config, checksum, fit
record). Entries are written into a temporary folder and renamed into place under a file lock, so a
crash never leaves a half entry and two sweep jobs that need the same model train it once. An entry
whose checksum or contents do not match is reported and retrained, never loaded as if fine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from filelock import FileLock, Timeout
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

import xai_cli
from xai_cli.data.base import ArrayDataModule
from xai_cli.errors import UserError
from xai_cli.models.classifiers.base import Classifier
from xai_cli.training.fit import Seeds
from xai_cli.training.parallel import effective_precision, world_size
from xai_cli.training.snapshots import save_snapshots, snapshot_file
from xai_cli.utils.hashing import file_sha256

log = logging.getLogger("xai")

STORE_FORMAT = 1
ARTIFACT = "model.bin"
META = "meta.json"
# Dataset keys that say where data lives or how it is loaded, not what it is.
_DATASET_IGNORED = {"data_dir", "download", "num_workers"}
# Trainer keys that change the trained weights (hardware choices such as accelerator do not enter the key).
# fast_dev_run and overfit_batches (the debug group) too: a debug run never serves a real one its models.
_TRAINER_KEPT = ("max_epochs", "limit_train_batches", "precision", "gradient_clip_val", "accumulate_grad_batches",
                 "fast_dev_run", "overfit_batches")
# Callbacks that leave the weights as they are (the others, early stopping, enter the key)
_NEUTRAL_CALLBACKS = ("xai_cli.training.trainer.fit_progress", "lightning.pytorch.callbacks.ModelCheckpoint",
                      "lightning.pytorch.callbacks.RichModelSummary", "lightning.pytorch.callbacks.ModelSummary",
                      "lightning.pytorch.callbacks.LearningRateMonitor")


def model_key(model_cfg: DictConfig, dataset_cfg: DictConfig, trainer_cfg: DictConfig, seed: int) -> str:
    """sha256 over the resolved configs that determine a trained model."""
    dataset = {k: v for k, v in _plain(dataset_cfg).items() if k not in _DATASET_IGNORED}
    trainer = {k: v for k, v in _plain(trainer_cfg).items() if k in _TRAINER_KEPT}
    # what Lightning really trains with: `16-mixed` on a CPU is bf16, and data-parallel workers each see a
    # share of every epoch (fewer optimiser steps). Single-device entries keep the key they always had.
    if "precision" in trainer:
        trainer["precision"] = effective_precision(trainer_cfg)
    processes = world_size(trainer_cfg)
    if processes > 1:
        trainer["world_size"] = processes
    shaping = {name: node for name, node in (_plain(trainer_cfg).get("callbacks") or {}).items()
               if node and node.get("_target_") not in _NEUTRAL_CALLBACKS}
    if shaping:
        trainer["callbacks"] = shaping
    # the "classifier" key names any stored model's config (kept so existing store entries stay valid)
    payload = {"format": STORE_FORMAT, "classifier": _plain(model_cfg), "dataset": dataset,
               "trainer": trainer, "seed": int(seed)}
    # a fitter whose training changed under the same settings says so, and its older entries stop matching
    # (added only when set, so that every other entry keeps its key)
    target = model_cfg.get("fit", {}).get("_target_")
    revision = getattr(get_class(target), "store_revision", 0) if target else 0
    if revision:
        payload["fit_revision"] = revision
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _plain(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


@dataclass
class StoredModel:
    name: str
    model: Classifier | Any  # a classifier, or a generator such as the β-VAE
    key: str
    path: Path
    meta: dict[str, Any]
    trained_now: bool


class CorruptEntry(Exception):
    pass


class ModelStore:
    def __init__(self, root: str | Path, lock_timeout_s: float = 4 * 3600, keep_epochs: bool = True,
                 keep_explanations: bool = True) -> None:
        self.root = Path(root).expanduser().resolve()
        self.lock_timeout_s = lock_timeout_s
        self.keep_epochs = keep_epochs  # a torch classifier's earlier epochs beside its weights (not in the key)
        self.keep_explanations = keep_explanations  # maps analyses asked of a model, read back by warm runs

    @classmethod
    def from_paths(cls, paths: DictConfig) -> "ModelStore":
        return cls(str(paths.model_dir), 60 * float(paths.get("store_lock_timeout_min", 240)),
                   bool(paths.get("store_keep_epochs", True)), bool(paths.get("store_keep_explanations", True)))

    def entry_dir(self, name: str, key: str) -> Path:
        """The entry of `key`: an existing folder of that key whatever name it was stored under (a name is a
        label for people; the key is the content), else a new `<name>-<key16>`."""
        existing = sorted(p for p in self.root.glob(f"*-{key[:16]}") if p.is_dir() and not p.name.startswith("."))
        return existing[0] if existing else self.root / f"{name}-{key[:16]}"

    def get(
        self,
        name: str,
        model_cfg: DictConfig,
        data: ArrayDataModule,
        dataset_cfg: DictConfig,
        trainer_cfg: DictConfig,
        seed: int,
        context: dict[str, Any] | None = None,
    ) -> StoredModel:
        """Load the model from the store, or train it there first (`context`: objects the fitter needs
        besides the data, e.g. the classifier a counterfactual actor learns against)."""
        key = model_key(model_cfg, dataset_cfg, trainer_cfg, seed)
        # entries are renamed into place whole, so a sound one is read without the lock: a read-only store,
        # or one whose lock files belong to another user, still serves what it holds
        entry = self.entry_dir(name, key) if self.root.is_dir() else None
        if entry is not None and entry.exists():
            try:
                return self._stored(entry, name, key, model_cfg, seed)
            except CorruptEntry:
                pass  # looked at again under the lock, where it is replaced
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(self.root / f"{key[:16]}.lock"))  # one lock per key, whatever the name asked
            self._acquire(lock, name)
        except PermissionError as exc:
            raise UserError(f"{name} is not in the model store {self.root} and cannot be trained there "
                            f"({exc.strerror}): set paths.model_dir to a folder you can write") from None
        try:
            entry = self.entry_dir(name, key)
            if entry.exists():
                try:
                    return self._stored(entry, name, key, model_cfg, seed)
                except CorruptEntry as exc:
                    log.warning("%s: store entry %s is corrupted (%s); retraining it", name, entry, exc)
                    shutil.rmtree(entry)
            model, meta = self._train_into(entry, name, key, model_cfg, data, dataset_cfg, trainer_cfg, seed,
                                           context or {})
            return StoredModel(name, model, key, entry, meta, trained_now=True)
        finally:
            lock.release()
            if entry is not None and entry.is_dir():
                # a lock is needed only while its entry is missing: runs that come later read the entry
                # without it, and one still waiting holds the old file open and finds the entry there
                with contextlib.suppress(OSError):
                    Path(lock.lock_file).unlink()

    # --- internals ----------------------------------------------------------------------------------
    def snapshot(self, stored: StoredModel, model_cfg: DictConfig, seed: int, epoch: int) -> Classifier:
        """The weights `stored` had at the end of `epoch` (kept by its training), as a model ready to use."""
        path = snapshot_file(stored.path, stored.meta, epoch)
        model = self._build(model_cfg, seed)
        model.load(path)
        if isinstance(model, torch.nn.Module):
            model.eval()
        return model

    def _acquire(self, lock: FileLock, name: str) -> None:
        """Take the entry's lock, saying so when another run holds it, and give up after lock_timeout_s.
        flock on a cluster filesystem works where the filesystem supports it (NFS with lockd, Lustre mounted
        with `flock`, GPFS); where it does not, runs never wait for each other and the rename below decides."""
        try:
            lock.acquire(timeout=1)
            return
        except Timeout:
            log.info("%s: another run is training it; waiting for %s (at most %.0f min)", name, lock.lock_file,
                     self.lock_timeout_s / 60)
        try:
            lock.acquire(timeout=max(self.lock_timeout_s - 1, 0))
        except Timeout:
            raise UserError(f"{name}: gave up after {self.lock_timeout_s / 60:.0f} min waiting for {lock.lock_file}, "
                            "held by another run training this model; if none is (a crashed node's stale lock), "
                            "delete the file, or raise paths.store_lock_timeout_min") from None

    def _stored(self, entry: Path, name: str, key: str, model_cfg: DictConfig, seed: int) -> StoredModel:
        model, meta = self._load(entry, key, model_cfg, seed)
        log.info("%s: loaded from the store (%s)", name, entry.name)
        return StoredModel(name, model, key, entry, meta, trained_now=False)

    @staticmethod
    def _build(model_cfg: DictConfig, seed: int) -> Classifier | Any:
        init_seed = Seeds.of(model_cfg.fit.get("seeds"), seed).init
        L.seed_everything(init_seed, workers=False, verbose=False)  # initial weights come from the (init) seed
        return instantiate(model_cfg.model)

    def _load(self, entry: Path, key: str, model_cfg: DictConfig, seed: int) -> tuple[Classifier | Any, dict[str, Any]]:
        try:
            meta = json.loads((entry / META).read_text())
            # an entry must be the model asked for, not another one copied under this key's name
            if meta.get("key") != key:
                raise CorruptEntry(f"it was stored under another key ({str(meta.get('key'))[:16]}…)")
            if meta.get("classifier") != json.loads(json.dumps(_plain(model_cfg), default=str)):
                raise CorruptEntry("its recorded config is not the one asked for")
            artifact = entry / meta["artifact"]["file"]
            if artifact.stat().st_size != meta["artifact"]["bytes"]:
                raise CorruptEntry(f"{artifact.name} has {artifact.stat().st_size} bytes, expected {meta['artifact']['bytes']}")
            if file_sha256(artifact) != meta["artifact"]["sha256"]:
                raise CorruptEntry(f"{artifact.name} checksum mismatch")
            model = self._build(model_cfg, seed)
            model.load(artifact)
            if isinstance(model, torch.nn.Module):
                model.eval()  # as a freshly trained one is handed out: no dropout in what analyses compute
        except CorruptEntry:
            raise
        except Exception as exc:  # missing/garbled meta, unreadable weights, wrong shapes
            raise CorruptEntry(f"{type(exc).__name__}: {exc}") from exc
        return model, meta

    def _train_into(
        self,
        entry: Path,
        name: str,
        key: str,
        model_cfg: DictConfig,
        data: ArrayDataModule,
        dataset_cfg: DictConfig,
        trainer_cfg: DictConfig,
        seed: int,
        context: dict[str, Any],
    ) -> tuple[Classifier | Any, dict[str, Any]]:
        log.info("%s: not in the store, training it (%s)", name, entry.name)
        model = self._build(model_cfg, seed)
        fitter = instantiate(model_cfg.fit)
        # fitters that checkpoint (long GAN runs) keep their checkpoints beside the entry-to-be: a run that
        # is interrupted or diverges leaves them there, and the same command resumes from them
        work_dir = self.root / f".partial-{entry.name}"
        if getattr(fitter, "resumable", False):
            context = {**context, "work_dir": work_dir}
        result = fitter.fit(model, data, trainer_cfg, seed, name, **context)
        tmp = self.root / f".tmp-{entry.name}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            model.save(tmp / ARTIFACT)
            meta = {
                "name": name,
                "key": key,
                "format": STORE_FORMAT,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "xai_version": xai_cli.__version__,
                "seed": int(seed),
                "classifier": _plain(model_cfg),
                "dataset": _plain(dataset_cfg),
                "artifact": {"file": ARTIFACT, "bytes": (tmp / ARTIFACT).stat().st_size,
                             "sha256": file_sha256(tmp / ARTIFACT)},
                "fit": {"train_time_s": result.train_time_s, **result.details},
                "snapshots": save_snapshots(result.snapshots if self.keep_epochs else [], tmp),
            }
            (tmp / META).write_text(json.dumps(meta, indent=2, default=str))
            try:
                os.replace(tmp, entry)  # atomic: the entry appears whole or not at all
            except OSError:
                if not entry.is_dir():
                    raise
                # another node renamed the same entry into place first (its lock not seen: a filesystem
                # without working flock, or a stale directory cache): its entry is the same model
                log.info("%s: another run stored it meanwhile; using that entry", name)
                shutil.rmtree(tmp, ignore_errors=True)
                return self._load(entry, key, model_cfg, seed)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(work_dir, ignore_errors=True)  # the entry supersedes any checkpoints
        return model, meta


def to_device(stored: StoredModel) -> StoredModel:
    """Move a stored torch model to the GPU if there is one (scikit-learn models stay where they are)."""
    if isinstance(stored.model, torch.nn.Module):
        stored.model.to(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    return stored


def chosen(group: str) -> str:
    """The option chosen for a config group (e.g. classifier → cnn), which names stored models; the group's
    own name outside a Hydra run (tests composing configs directly)."""
    return str(HydraConfig.get().runtime.choices.get(group, group)) if HydraConfig.initialized() else group
