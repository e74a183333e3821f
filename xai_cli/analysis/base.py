"""What every CLI runner provides: run the configured analysis into the run directory.

A runner builds a `RunContext` from the config, calls its analysis function (the one the Python API
calls), and saves the typed result (`xai_cli.analysis.result`).
"""

from __future__ import annotations

from typing import Any, Protocol

from omegaconf import DictConfig

from xai_cli.report.writer import RunReport


class Runner(Protocol):
    def run(self, cfg: DictConfig, report: RunReport) -> dict[str, Any]:
        """Do the work, write the run's files into `report.run_dir`, return the metrics."""
        ...
