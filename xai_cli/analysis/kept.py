"""Arrays a stored model gave once, kept in its store entry: its probabilities on a split, its explanations,
its counterfactuals.

Each is a deterministic function of the entry and of what is asked (a split; a method's settings, the
images, their classes, the seed), so a warm run reads them instead of computing them again. They are written
whole or not at all (a temporary file renamed into place: a store shared by a sweep's jobs sees either the
array or nothing), read without pickle, and used only if their shape is the one asked for.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

log = logging.getLogger("xai")

# Bump when a method's answers change for the same settings (a fix in xai's own code): what the old code kept is
# then never read. Library versions are part of the key already.
KEPT_REVISION = 1
_LIBRARIES = ("torch", "captum", "shap", "lime", "scikit-image", "scikit-learn", "numpy")


def kept_array(path: Path | None, shape: tuple[int, ...], compute: Callable[[], np.ndarray], owner: str) -> np.ndarray:
    """The array at `path` if it is there, readable and of `shape`; else `compute()`, kept at `path`.

    `path` None: nothing to keep it in (a model not from the store); computed every time."""
    kept = _read_array(path, shape, owner)
    if kept is not None:
        return kept
    array = np.asarray(compute())
    _keep(path, lambda tmp: np.save(tmp, array, allow_pickle=False), owner)
    return array


def kept_array_and_record(path: Path | None, shape: tuple[int, ...],
                          compute: Callable[[], tuple[np.ndarray, dict[str, Any]]],
                          owner: str) -> tuple[np.ndarray, dict[str, Any], bool]:
    """`kept_array` with a JSON record of plain values beside the array (`path` with `.json`), e.g. what was
    measured of the maps and how long they took; kept only both together. The flag says they were read."""
    record_path = path.with_suffix(".json") if path is not None else None
    if record_path is not None and record_path.is_file():
        array = _read_array(path, shape, owner)
        try:
            record = json.loads(record_path.read_text())
        except (OSError, ValueError) as exc:
            log.info("%s: %s unreadable (%s): computing it again", owner, record_path.name, exc)
            record = None
        if array is not None and isinstance(record, dict):
            return array, record, True
    array, record = compute()
    array = np.asarray(array)
    _keep(record_path, lambda tmp: tmp.write_text(json.dumps(record)), owner)  # the record first: an array
    _keep(path, lambda tmp: np.save(tmp, array, allow_pickle=False), owner)   # alone is never read as both
    return array, record, False


def _read_array(path: Path | None, shape: tuple[int, ...], owner: str) -> np.ndarray | None:
    if path is None or not path.is_file():
        return None
    try:
        kept = np.load(path, allow_pickle=False)
        if kept.shape == shape:
            return kept
        log.info("%s: %s has shape %s, not %s: computing it again", owner, path.name, kept.shape, shape)
    except (OSError, ValueError) as exc:
        log.info("%s: %s unreadable (%s): computing it again", owner, path.name, exc)
    return None


def _keep(path: Path | None, write: Callable[[Path], Any], owner: str) -> None:
    """Write through a temporary file renamed into place; a store that cannot be written still serves."""
    if path is None:
        return
    tmp = path.with_name(f".{path.stem}.{os.getpid()}{path.suffix}")
    try:
        path.parent.mkdir(exist_ok=True)
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:  # a read-only store still serves its models
        tmp.unlink(missing_ok=True)
        log.info("%s: could not keep %s in the store (%s)", owner, path.name, exc)


def explanation_key(explainer: Any, x: torch.Tensor, target: torch.Tensor, seed: int, device: torch.device,
                    extra: Mapping[str, Any] | None = None) -> str | None:
    """The key of an explainer's maps of one model: `question_key` over its reference images, the images and
    their target classes."""
    return question_key(explainer, (explainer.background, x, target), seed, device, extra)


def question_key(method: Any, tensors: Sequence[torch.Tensor | None], seed: int, device: torch.device,
                 extra: Mapping[str, Any] | None = None) -> str | None:
    """A sha256 of everything that determines what a method (an explainer, a counterfactual search) gives for
    one model: the method (its class), every public setting, the tensors it is given, the seed torch is set
    to, the device kind, the versions of the libraries that compute it, and `extra` (plain values: what else
    the answer depends on). None when a setting is not a plain value (it could not be told apart from
    another): such answers are never kept."""
    settings: dict[str, Any] = {}
    for name, value in sorted(vars(method).items()):
        if name.startswith("_") or name == "background":
            continue
        if not _plain(value):
            return None
        settings[name] = value
    digest = hashlib.sha256()
    digest.update(json.dumps({
        "method": f"{type(method).__module__}.{type(method).__qualname__}",
        "settings": settings, "seed": int(seed), "device": device.type, "revision": KEPT_REVISION,
        "libraries": {name: _version(name) for name in _LIBRARIES}, "extra": dict(extra or {}),
    }, sort_keys=True, default=str).encode())
    for tensor in tensors:
        if tensor is None:
            digest.update(b"none")
            continue
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()


def _plain(value: Any) -> bool:
    if isinstance(value, (bool, int, float, str, type(None))):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return False


@cache
def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"
