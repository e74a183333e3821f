"""Where the config tree lives, and composing it outside a Hydra run (the Python API, tests).

The CLI runs under `@hydra.main` (run directories, multirun); the Python API only needs the composed
settings, which Hydra's compose API gives. Both read the same YAML, so a model asked for by name from
Python has the same config, and hence the same store entry, as the CLI's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig


def _config_dir() -> Path:
    packaged = Path(__file__).parent / "configs"  # inside a built wheel
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / "configs"


CONFIG_DIR = _config_dir()


def compose(command: str, overrides: Sequence[str] = ()) -> DictConfig:
    """The composed (unresolved) config of `command` with Hydra overrides, as the CLI would build it.

    Works inside another Hydra app too: Hydra's global state is put back as it was found.
    """
    global_hydra = GlobalHydra.instance()
    outer = global_hydra.hydra if global_hydra.is_initialized() else None
    global_hydra.clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3", job_name=command):
            return hydra_compose(config_name=command, overrides=list(overrides))
    finally:
        global_hydra.clear()
        if outer is not None:
            global_hydra.initialize(outer)
