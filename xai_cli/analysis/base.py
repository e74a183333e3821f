"""What every runner provides: run the analysis, and render its report from metrics.json alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from omegaconf import DictConfig

from xai_cli.report.document import Document
from xai_cli.report.writer import RunReport


class Runner(Protocol):
    def run(self, cfg: DictConfig, report: RunReport) -> dict[str, Any]:
        """Do the work, save figures through `report`, write the report, return the metrics."""
        ...

    @staticmethod
    def render(metrics: dict[str, Any], run_dir: Path) -> Document:
        """The report document, from the metrics and the figures already in run_dir (used by `xai report`)."""
        ...
