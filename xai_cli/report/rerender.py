"""`xai report DIR`: rebuild a run's report from its metrics.json, or a sweep's summary table."""

from __future__ import annotations

from pathlib import Path

from xai_cli.analysis.result import load_result, write_report
from xai_cli.errors import UserError
from xai_cli.report.sweep import is_sweep_dir, write_sweep_summary


def rerender(run_dir: Path) -> Path:
    """Re-render a run (by the result class of the command its metrics.json names: never a class named in a
    config file) or a sweep's summary; returns the file written."""
    run_dir = run_dir.expanduser().resolve()
    if not run_dir.is_dir():
        raise UserError(f"no such directory: {run_dir}")
    if is_sweep_dir(run_dir):
        return write_sweep_summary(run_dir)
    result = load_result(run_dir)
    try:
        write_report(result, run_dir)
    except (KeyError, TypeError, ValueError, IndexError) as exc:  # a metrics.json edited by hand, or truncated
        raise UserError(f"{run_dir / 'metrics.json'} lacks what the {result.command} report shows "
                        f"({type(exc).__name__}: {exc}); rerun the analysis") from None
    return run_dir / "report.html"
