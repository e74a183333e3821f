"""One summary table over the jobs of a multirun, written when the sweep ends (or by `xai report`)."""

from __future__ import annotations

import csv
import io
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from xai_cli.report.document import Document, Link, fmt
from xai_cli.report.writer import METRICS, atomic_write

log = logging.getLogger("xai")


@dataclass
class SweepOutcome:
    summary: Path
    jobs: int
    failed: int


# Set by the callback in the process that launched the sweep, so the CLI can exit non-zero after it, and
# can still summarise a sweep whose launcher raised.
last_outcome: SweepOutcome | None = None
started: Path | None = None


# Written by the launchers in hydra_plugins/xai_launchers: how the scheduler ended the jobs that left no result
SCHEDULER_RECORD = "scheduler.json"


def write_scheduler_record(sweep_dir: Path, ends: dict[int, dict[str, Any]]) -> None:
    atomic_write(sweep_dir / SCHEDULER_RECORD, json.dumps({str(k): v for k, v in sorted(ends.items())}, indent=2))


def read_scheduler_record(sweep_dir: Path) -> dict[int, dict[str, Any]]:
    path = sweep_dir / SCHEDULER_RECORD
    if not path.is_file():
        return {}
    try:
        return {int(k): v for k, v in json.loads(path.read_text()).items()}
    except (ValueError, AttributeError):
        return {}


def is_sweep_dir(path: Path) -> bool:
    return (path / "multirun.yaml").is_file()


def flatten_numbers(tree: Any, prefix: str = "") -> dict[str, float | int]:
    """Numeric leaves of nested dicts as dotted keys (lists and strings are left out of the table)."""
    out: dict[str, float | int] = {}
    if isinstance(tree, dict):
        for key, value in tree.items():
            if not prefix and key == "schema_version":  # the file's layout, not a result
                continue
            out.update(flatten_numbers(value, f"{prefix}{key}."))
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        out[prefix[:-1]] = tree
    return out


def _job_dirs(sweep_dir: Path) -> list[Path]:
    jobs = [p for p in sweep_dir.iterdir() if p.is_dir() and (p / ".hydra").is_dir()]
    return sorted(jobs, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))


def summarise_sweep(sweep_dir: Path) -> tuple[list[str], list[list[Any]]]:
    """Rows of (job, swept values..., status, metrics...) over every job directory of the sweep.

    Only the overrides that vary are columns (they are what the sweep is about); metrics that vary across
    the jobs come before the ones every job shares (dataset sizes, settings echoed into metrics.json), and a
    metric that repeats a swept setting (`seed`) is left out."""
    ends = read_scheduler_record(sweep_dir)  # jobs the scheduler ended without a result
    jobs = []
    for job in _job_dirs(sweep_dir):
        overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()) or []
        params = dict(o.split("=", 1) for o in overrides if "=" in o)
        end = ends.pop(int(job.name), None) if job.name.isdigit() else None
        if (job / METRICS).is_file():
            metrics, status = flatten_numbers(json.loads((job / METRICS).read_text())), "ok"
        elif (job / "error.txt").is_file():
            first = (job / "error.txt").read_text().splitlines()[0][:100]
            metrics, status = {}, first if first.startswith(TIMED_OUT) else f"failed: {first}"
        else:
            metrics, status = {}, scheduler_status(end) if end else "unfinished"
        jobs.append((job.name, params, status, metrics))
    for number, end in sorted(ends.items()):  # ended before its run directory existed (cancelled while queued)
        params = dict(o.split("=", 1) for o in end.get("overrides", []) if "=" in o)
        jobs.append((str(number), params, scheduler_status(end), {}))
    keys = sorted({k for _, p, _, _ in jobs for k in p})
    swept = [k for k in keys if len({p.get(k) for _, p, _, _ in jobs}) > 1] or keys
    metric_keys = sorted({k for *_, m in jobs for k in m} - set(keys))
    varies = {k: len({m.get(k) for *_, m in jobs if k in m}) > 1 for k in metric_keys}
    # stable: alphabetical within each group; the dataset's sizes, which jobs seldom change, last
    metric_keys.sort(key=lambda k: (not varies[k], k.startswith("dataset.")))
    headers = ["job", *swept, "status", *metric_keys]
    rows = [[name, *(p.get(k, "") for k in swept), status, *(m.get(k) for k in metric_keys)]
            for name, p, status, m in jobs]
    return headers, rows


# Scheduler states (Slurm's, submitit's local ones) in words
TIMED_OUT = "timed out"  # also how a job's error.txt starts when its time limit stopped it
SUBMITIT_TIMED_OUT = "timed-out"  # in submitit's message when its time-limit handler does not requeue a job
_STATES = {"CANCELLED": "cancelled", "TIMEOUT": TIMED_OUT, "OUT_OF_MEMORY": "out of memory",
           "PREEMPTED": "preempted", "NODE_FAIL": "node failed", "INTERRUPTED": "killed", "FAILED": "failed",
           "RUNNING": "still running", "PENDING": "still queued"}


def scheduler_status(end: dict[str, Any]) -> str:
    """How the scheduler ended a job that left no result, e.g. `cancelled (slurm job 42_1)`."""
    state = str(end.get("state", "UNKNOWN"))
    word = _STATES.get(state.split()[0] if state else "", f"ended without a result ({state})")
    return f"{word} (scheduler job {end.get('scheduler_id', '?')})"


def _linked(sweep_dir: Path, rows: list[list[Any]]) -> list[list[Any]]:
    """The job column as links to each job's report, where it has one."""
    return [[Link(r[0], f"{r[0]}/report.html") if (sweep_dir / r[0] / "report.html").is_file() else r[0], *r[1:]]
            for r in rows]


Table = tuple[list[str], list[list[Any]]]


def write_sweep_summary(sweep_dir: Path, table: Table | None = None) -> Path:
    """summary.{csv,json,md,html} of the sweep (`table`: its summarise_sweep, when already read)."""
    headers, rows = table or summarise_sweep(sweep_dir)
    buf = io.StringIO()
    csv.writer(buf).writerows([headers, *rows])
    atomic_write(sweep_dir / "summary.csv", buf.getvalue())
    atomic_write(sweep_dir / "summary.json", json.dumps([dict(zip(headers, r)) for r in rows], indent=2))
    doc = Document(f"Sweep summary: {sweep_dir.name}")
    n_ok = sum(r[headers.index("status")] == "ok" for r in rows)
    doc.paragraph(f"{len(rows)} jobs, {n_ok} finished, {len(rows) - n_ok} failed or unfinished. "
                  f"Each job's number links its own report; settings that vary come first, then the metrics "
                  f"that differ between jobs, then those all jobs share.")
    doc.table(headers, _linked(sweep_dir, rows))
    atomic_write(sweep_dir / "summary.md", doc.to_markdown())
    atomic_write(sweep_dir / "summary.html", doc.to_html(sweep_dir))
    return sweep_dir / "summary.md"


def format_table(headers: list[str], rows: list[list[Any]], width: int | None = None) -> str:
    """A plain-text table for the console: as many leading columns as fit the terminal (at least the job,
    its settings and status, and one metric), then how many more the files hold."""
    width = width or shutil.get_terminal_size((120, 24)).columns
    cells = [headers, *[[fmt(c) for c in r] for r in rows]]
    widths = [max(len(str(row[i])) for row in cells) for i in range(len(headers))]
    shown, used = 0, -2
    essential = headers.index("status") + 2 if "status" in headers else 1
    while shown < len(headers) and (shown < essential or used + 2 + widths[shown] <= width):
        used += 2 + widths[shown]
        shown += 1
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row[:shown], widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths[:shown]))
    if shown < len(headers):
        lines.append(f"(+{len(headers) - shown} more columns)")
    return "\n".join(lines)


class SweepSummaryCallback(Callback):
    """Hydra callback: after the last job of a multirun, write summary.{md,html,csv,json} in the sweep dir."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        global started
        started = Path(config.hydra.sweep.dir)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if sweep_dir.is_dir():
            summarise_and_print(sweep_dir)
            if config.get("logger"):
                from xai_cli.tracking import log_sweep_summary  # imports Lightning: only with a tracker

                log_sweep_summary(config.logger, config.hydra.job.name, sweep_dir, Path(config.paths.output_dir))


def summarise_and_print(sweep_dir: Path, table: Table | None = None) -> SweepOutcome:
    """Write the summary files and print the table; the outcome is kept for the CLI's exit status."""
    global last_outcome
    headers, rows = table or summarise_sweep(sweep_dir)
    path = write_sweep_summary(sweep_dir, (headers, rows))
    failed = sum(r[headers.index("status")] != "ok" for r in rows)
    last_outcome = SweepOutcome(path, len(rows), failed)
    # printed, not logged: Hydra has already closed the jobs' logging, and this table is the sweep's answer
    print(f"\nSweep summary ({len(rows)} jobs, {failed} failed; all columns in {path.with_suffix('.csv')}):")
    print(format_table(headers, rows), flush=True)
    return last_outcome
