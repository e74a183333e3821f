"""`xai report DIR`: rebuild a run's report from its metrics.json, or a sweep's summary table."""

from __future__ import annotations

from pathlib import Path

from hydra.utils import get_class
from omegaconf import OmegaConf

from xai_cli.errors import UserError
from xai_cli.report.sweep import is_sweep_dir, write_sweep_summary
from xai_cli.report.writer import METRICS, RunReport, load_metrics


def rerender(run_dir: Path) -> Path:
    run_dir = run_dir.expanduser().resolve()
    if not run_dir.is_dir():
        raise UserError(f"no such directory: {run_dir}")
    if is_sweep_dir(run_dir):
        return write_sweep_summary(run_dir)
    if not (run_dir / METRICS).is_file():
        hint = " (the run failed: see error.txt)" if (run_dir / "error.txt").is_file() else ""
        raise UserError(f"{run_dir} has no {METRICS}{hint}: not a finished xai run")
    if not (run_dir / "config.yaml").is_file():
        raise UserError(f"{run_dir} has no config.yaml: not an xai run directory")
    # the runner that wrote the run renders it again: its class is the run's own analysis._target_
    runner_cls = get_class(OmegaConf.load(run_dir / "config.yaml").analysis._target_)
    metrics = load_metrics(run_dir)
    report = RunReport(run_dir)
    report.write(metrics, runner_cls.render(metrics, run_dir))
    return run_dir / "report.html"
