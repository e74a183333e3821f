"""What an analysis returns: its numbers, figures and arrays, one class per analysis; and saving them.

Every analysis computes a result, `render()` turns it into the report document, and one function saves any
result as a run directory (figures, arrays, report.md, report.html, metrics.json last: its presence marks a
finished run). `metrics.json` carries a `schema_version`; `load_result` reads a run written by this or an
earlier version and re-renders it, or says in one line which version it cannot read.
"""

from __future__ import annotations

import importlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np

from xai_cli.errors import UserError
from xai_cli.report.document import Document
from xai_cli.report.writer import METRICS, SCHEMA_VERSION, atomic_write, json_default, png_bytes

RESULTS: dict[str, type["AnalysisResult"]] = {}  # command -> its result class, filled by subclassing
# command -> the module defining its result class, imported on demand (`xai report` loads one analysis only)
RESULT_MODULES = {command: f"xai_cli.analysis.{command}"
                  for command in ("train", "explain", "discrepancy", "consistency", "uncertainty", "counterfactual")}


@dataclass
class AnalysisResult:
    """Base of every analysis's result.

    Attributes:
        metrics: every number of the report, as written to metrics.json.
        figures: PNG bytes by path relative to the run directory ("figures/<name>.png").
        arrays: per .npz file name, the arrays it holds (e.g. "attributions.npz" → {"cnn/lime": (N, H, W)}).
        files: other text files by name (e.g. "intervals.json").
        source_dir: the run directory it was loaded from, if any.
    """

    metrics: dict[str, Any]
    figures: dict[str, bytes] = field(default_factory=dict)
    arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    source_dir: Path | None = field(default=None, repr=False)

    command: ClassVar[str] = ""
    schema_version: ClassVar[int] = SCHEMA_VERSION

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.command:
            RESULTS[cls.command] = cls

    # --- what a subclass provides -------------------------------------------------------------------
    def render(self) -> Document:
        """The report document, from the metrics and the figures alone."""
        raise NotImplementedError

    @classmethod
    def upgrade(cls, metrics: dict[str, Any], version: int) -> dict[str, Any]:
        """Bring metrics written under an older schema version to this one (nothing to do so far)."""
        return metrics

    # --- shared -------------------------------------------------------------------------------------
    def add_figure(self, fig: Any, name: str) -> str:
        """Keep a matplotlib figure as figures/<name>.png (the figure is closed); returns that path."""
        path = f"figures/{name}.png"
        self.figures[path] = png_bytes(fig)
        return path

    def array_file(self, name: str) -> dict[str, np.ndarray]:
        """The arrays of one .npz file of the run: in memory, or read from the run directory on first use."""
        if name not in self.arrays and self.source_dir is not None:
            with np.load(self.source_dir / name) as saved:
                self.arrays[name] = {k: saved[k] for k in saved.files}
        return self.arrays[name]

    def has_figure(self, path: str) -> bool:
        """Whether the figure exists (in memory, or in the run directory the result was loaded from)."""
        return path in self.figures or (self.source_dir is not None and (self.source_dir / path).is_file())

    def to_markdown(self) -> str:
        return self.render().to_markdown()

    def to_html(self) -> str:
        """The self-contained report.html, figures embedded."""
        return self.render().to_html(self._images())

    def _repr_html_(self) -> str:  # notebooks show the report
        return self.to_html()

    def _images(self) -> dict[str, bytes] | Path:
        return self.figures if self.figures or self.source_dir is None else self.source_dir

    def save(self, run_dir: str | Path) -> Path:
        """Write the run directory (see `save_result`); returns the path of report.html."""
        return save_result(self, Path(run_dir))


def read_settings(kind: type, values: Mapping[str, Any], where: str) -> Any:
    """A settings dataclass from a mapping (the CLI's `<command>.*` or the API's keywords); an unknown key is
    one line naming the valid ones."""
    known = set(kind.__dataclass_fields__)
    unknown = sorted(set(values) - known)
    if unknown:
        raise UserError(f"{where} has no setting {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    return kind(**values)


def save_result(result: AnalysisResult, run_dir: Path) -> Path:
    """Figures, arrays and files first, then report.md and report.html, metrics.json last.

    Each file is written atomically. A directory that already holds a finished run is refused: earlier
    runs are never overwritten.
    """
    run_dir = Path(run_dir).expanduser()
    if (run_dir / METRICS).exists():
        raise UserError(f"{run_dir} already holds a finished run; choose a new directory")
    if result.source_dir is not None:  # a loaded run saved elsewhere: bring what is still on disk along
        for png in sorted((result.source_dir / "figures").glob("*.png")):
            result.figures.setdefault(f"figures/{png.name}", png.read_bytes())
        for npz in sorted(result.source_dir.glob("*.npz")):
            result.array_file(npz.name)
        for text in sorted(p for p in result.source_dir.glob("*.json") if p.name != METRICS):
            result.files.setdefault(text.name, text.read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    for path, data in result.figures.items():
        atomic_write(run_dir / path, data)
    for name, arrays in result.arrays.items():
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        atomic_write(run_dir / name, buffer.getvalue())
    for name, text in result.files.items():
        atomic_write(run_dir / name, text)
    write_report(result, run_dir)
    return run_dir / "report.html"


def write_report(result: AnalysisResult, run_dir: Path) -> None:
    """report.md, report.html, then metrics.json (stamped with the schema version)."""
    document = result.render()
    atomic_write(run_dir / "report.md", document.to_markdown())
    atomic_write(run_dir / "report.html", document.to_html(result.figures or run_dir))
    metrics = {"schema_version": type(result).schema_version,
               **{k: v for k, v in result.metrics.items() if k != "schema_version"}}
    atomic_write(run_dir / METRICS, json.dumps(metrics, indent=2, default=json_default))


def load_result(run_dir: str | Path) -> AnalysisResult:
    """The result of a finished run directory (figures are read from it as they are needed)."""
    run_dir = Path(run_dir).expanduser().resolve()
    if not (run_dir / METRICS).is_file():
        hint = " (the run failed: see error.txt)" if (run_dir / "error.txt").is_file() else ""
        raise UserError(f"{run_dir} has no {METRICS}{hint}: not a finished xai run")
    try:
        metrics = json.loads((run_dir / METRICS).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{run_dir / METRICS} is not valid JSON ({exc})") from exc
    command = metrics.get("command") if isinstance(metrics, dict) else None
    if command not in RESULT_MODULES:
        raise UserError(f"{run_dir / METRICS} names command {command!r}, not one of xai's: "
                        f"{', '.join(RESULT_MODULES)}")
    importlib.import_module(RESULT_MODULES[command])  # a fixed module of ours, never one a file names
    cls = RESULTS[command]
    version = metrics.get("schema_version", 0)
    if not isinstance(version, int) or version > cls.schema_version:
        raise UserError(f"{run_dir} was written with metrics schema version {version}; this xai "
                        f"({_version()}) reads {command} runs up to version {cls.schema_version}: upgrade xai")
    return cls(metrics=cls.upgrade(metrics, version), source_dir=run_dir)


def _version() -> str:
    import xai_cli

    return xai_cli.__version__
