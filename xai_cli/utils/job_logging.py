"""Log lines that say which job of a sweep wrote them: parallel jobs (joblib) share one console."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode


class JobNumber(logging.Filter):
    """Gives each record `job`: " #3" in job 3 of a sweep, "" in a single run.

    Hydra configures logging per job, after the job's config is set, so the number is read once, here."""

    def __init__(self) -> None:
        super().__init__()
        self.label = ""
        if HydraConfig.initialized():
            hydra_cfg = HydraConfig.get()
            if hydra_cfg.mode == RunMode.MULTIRUN:
                self.label = f" #{hydra_cfg.job.num}"

    def filter(self, record: logging.LogRecord) -> bool:
        record.job = self.label
        return True


class Console(logging.StreamHandler):
    """Writes each line to whatever `sys.stderr` is at that moment. A live progress display swaps in a proxy
    that prints lines above its bars; a handler holding the stream it was configured with would write
    through the bars instead."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:  # logging's constructor and setStream assign it; sys.stderr rules
        pass
