"""Content hashes of files: what the model store checks its entries by, and what a model file is known by."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Iterable


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB chunks (model files can be gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class HashCache:
    """sha256 of files, remembered by absolute path, size and modification time.

    A dataset's store identity is its content, so a rewritten file is never served a model trained on the
    old one; hashing a large npz or a folder of images on every run would cost seconds, so the hashes are
    kept in a JSON file (the dataset's `cache_dir`) and recomputed only for files whose size or mtime
    changed. `path=None` keeps them for this process only.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._entries: dict[str, list[Any]] = {}
        self._changed = False
        if path is not None and path.is_file():
            try:
                loaded = json.loads(path.read_text())
                self._entries = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):  # unreadable or half-written by a crash: start afresh
                self._entries = {}

    def sha256(self, file: Path) -> str:
        return self.remember(file, "sha256", file_sha256)

    def remember(self, file: Path, kind: str, compute: Callable[[Path], str]) -> str:
        """`compute(file)`, computed again only when the file's size or mtime changed. `kind` names what is
        remembered (a hash, a verdict on the file); what `compute` raises is not remembered."""
        stat = file.stat()
        key = str(file.resolve()) if kind == "sha256" else f"{kind}:{file.resolve()}"  # sha256: the first kind
        known = self._entries.get(key)
        if isinstance(known, list) and known[:2] == [stat.st_size, stat.st_mtime_ns] and len(known) == 3:
            return str(known[2])
        value = compute(file)
        self._entries[key] = [stat.st_size, stat.st_mtime_ns, value]
        self._changed = True
        return value

    def save(self) -> None:
        if self.path is None or not self._changed:
            return
        from xai_cli.report.writer import atomic_write

        try:
            atomic_write(self.path, json.dumps(self._entries))
        except OSError:  # a read-only cache costs time on the next run, never correctness
            pass
        self._changed = False


def content_sha256(files: Iterable[Path], root: Path, cache: HashCache) -> str:
    """One sha256 over files' names (relative to `root`) and contents: a folder's identity."""
    digest = hashlib.sha256()
    for file in sorted(files):
        digest.update(f"{file.relative_to(root).as_posix()}\0{cache.sha256(file)}\0".encode())
    cache.save()
    return digest.hexdigest()
