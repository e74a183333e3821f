"""Data-parallel training that fits the model store: one main process owns the store and the report.

Lightning's `ddp` (and `strategy: auto` over several devices) re-runs the whole command once per device, and
under Slurm it takes one Slurm task per device: every copy would take the store's lock and write the report
(the second copy waits on the lock while the first waits for it in `init_process_group`: a deadlock).
`ddp_spawn` starts its workers from the main process and hands rank 0's weights back, so only the spawning
strategies are allowed for more than one device, in one task. What these settings train (the world size,
the precision Lightning really uses) also enters the store key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig

from xai_cli.errors import UserError

# strategies whose workers are started by this process rather than by re-running the command
SPAWNING = ("ddp_spawn", "ddp_fork", "ddp_notebook")
# Lightning's short precision names, as its accelerator connector unifies them
_PRECISION_NAMES = {"16": "16-mixed", "bf16": "bf16-mixed", "32": "32-true", "64": "64-true"}


def uses_gpu(trainer_cfg: Mapping[str, Any]) -> bool:
    accelerator = str(trainer_cfg.get("accelerator", "auto"))
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def world_size(trainer_cfg: Mapping[str, Any]) -> int:
    """How many processes train together, as Lightning will count them (devices × nodes)."""
    devices = trainer_cfg.get("devices", "auto")
    if isinstance(devices, (list, tuple, ListConfig)):
        count = len(devices)
    elif isinstance(devices, str) and "," in devices:
        count = len([d for d in devices.split(",") if d.strip()])
    elif devices in (-1, "-1", "auto"):
        # every GPU; a CPU counts as one device (Lightning refuses -1 there itself)
        count = max(torch.cuda.device_count(), 1) if uses_gpu(trainer_cfg) else 1
    else:
        count = int(devices)
    return count * int(trainer_cfg.get("num_nodes", 1) or 1)


def effective_precision(trainer_cfg: Mapping[str, Any]) -> str:
    """The precision Lightning trains in: its unified name, and bf16 where fp16 AMP is asked for on a CPU
    (Lightning switches with a warning, so `16-mixed` on a CPU trains a bf16 model)."""
    precision = str(trainer_cfg.get("precision", "32-true"))
    precision = _PRECISION_NAMES.get(precision, precision)
    if precision == "16-mixed" and not uses_gpu(trainer_cfg):
        return "bf16-mixed"
    return precision


def _strategy_name(trainer_cfg: Mapping[str, Any]) -> str:
    strategy = trainer_cfg.get("strategy", "auto")
    return str(strategy if isinstance(strategy, str) else (strategy or {}).get("_target_", strategy))


def _spawns(trainer_cfg: Mapping[str, Any]) -> bool:
    return any(_strategy_name(trainer_cfg).startswith(s) for s in SPAWNING)


def check_parallel(trainer_cfg: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> None:
    """Refuse, in one line, a multi-process setting that would re-run the command per device, or a Slurm job
    of several tasks (each task would be a whole xai run)."""
    tasks = int(environ.get("SLURM_NTASKS", "1") or 1) if "SLURM_JOB_ID" in environ else 1
    if tasks > 1:
        raise UserError(f"this Slurm job has {tasks} tasks, and each would run the whole command: use one task "
                        "per job (hydra.launcher.tasks_per_node=1) and train on several devices with trainer=ddp")
    processes = world_size(trainer_cfg)
    if processes > 1 and not _spawns(trainer_cfg):
        raise UserError(f"trainer.strategy={_strategy_name(trainer_cfg)} on {processes} devices re-runs the whole "
                        "command once per device: use trainer=ddp (ddp_spawn: this process owns the model store "
                        "and the report) or trainer.strategy=ddp_spawn")


def cluster_plugins(trainer_cfg: DictConfig | Mapping[str, Any]) -> list[Any]:
    """Spawned workers take their ranks from the spawn. Inside a Slurm job Lightning would read them from the
    job's environment instead (SLURM_PROCID: rank 0 for every worker, which then collide on one port), so a
    spawning strategy gets Lightning's own environment."""
    if world_size(trainer_cfg) <= 1 or not _spawns(trainer_cfg):
        return []
    from lightning.pytorch.plugins.environments import LightningEnvironment

    return [LightningEnvironment()]
