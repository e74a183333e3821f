"""The weights at the end of each epoch but the last, kept in the classifier's store entry.

DIG compares models of equal accuracy (DIG-CV matches a CNN and an SVM within 0.01 %); a net that ends
stronger than the model it is compared with passed through that model's accuracy on the way, and one of its
earlier epochs can stand for it (`discrepancy.match_accuracy`). Keeping them costs one state dict per epoch
beside the final weights; they never change the final weights, so the store key does not depend on them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import torch

from xai_cli.utils.hashing import file_sha256


class EpochSnapshots(L.Callback):
    """Copies of the trained net's state dict at the end of every training epoch (on the CPU)."""

    def __init__(self) -> None:
        self.states: list[tuple[int, dict[str, torch.Tensor]]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        net = getattr(pl_module, "net", pl_module)
        self.states.append((trainer.current_epoch + 1, {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}))


def save_snapshots(states: list[tuple[int, dict[str, torch.Tensor]]], folder: Path) -> list[dict[str, Any]]:
    """Write every epoch but the last (that one is the entry's artifact) as epoch-<k>.pt; their records."""
    records = []
    for epoch, state in states[:-1]:
        path = folder / f"epoch-{epoch}.pt"
        torch.save(state, path)
        records.append({"epoch": epoch, "file": path.name, "bytes": path.stat().st_size, "sha256": file_sha256(path)})
    return records


def snapshot_file(entry: Path, meta: dict[str, Any], epoch: int) -> Path:
    """The checked file of one epoch's weights in a store entry (ValueError if missing or altered)."""
    records = {r["epoch"]: r for r in meta.get("snapshots", [])}
    if epoch not in records:
        raise ValueError(f"{entry.name} keeps no weights of epoch {epoch} (it has {sorted(records) or 'none'})")
    record = records[epoch]
    path = entry / record["file"]
    if not path.is_file() or path.stat().st_size != record["bytes"] or file_sha256(path) != record["sha256"]:
        raise ValueError(f"{entry.name}/{record['file']} is missing or altered: {json.dumps(record)}")
    return path
