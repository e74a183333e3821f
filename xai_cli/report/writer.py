"""Write a run's report files, each atomically (temporary file, then rename)."""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from xai_cli.report.document import Document

METRICS = "metrics.json"
# The layout of metrics.json. Runs written before it carried a version are version 0, read as version 1.
SCHEMA_VERSION = 1


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write to a sibling temporary file and rename it over `path`: readers see all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            f.write(data)
        os.chmod(tmp, _umask_mode())  # mkstemp makes files private; reports are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def png_bytes(fig: Any) -> bytes:
    """A matplotlib figure as PNG bytes (the figure is closed)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buffer.getvalue()


class RunReport:
    """The report files of one run directory."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.figures_dir = self.run_dir / "figures"

    def save_figure(self, fig: Any, name: str) -> str:
        """Save a matplotlib figure as figures/<name>.png; returns the path relative to the run dir."""
        import matplotlib.pyplot as plt

        self.figures_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.figures_dir, prefix=f".{name}.", suffix=".png")
        os.close(fd)
        try:
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
            os.chmod(tmp, _umask_mode())
            os.replace(tmp, self.figures_dir / f"{name}.png")
        finally:
            Path(tmp).unlink(missing_ok=True)
            plt.close(fig)
        return f"figures/{name}.png"

    def write(self, metrics: dict[str, Any], document: Document) -> None:
        """Report files first, metrics.json last: its presence marks a finished run."""
        atomic_write(self.run_dir / "report.md", document.to_markdown())
        atomic_write(self.run_dir / "report.html", document.to_html(self.run_dir))
        stamped = {"schema_version": SCHEMA_VERSION, **{k: v for k, v in metrics.items() if k != "schema_version"}}
        atomic_write(self.run_dir / METRICS, json.dumps(stamped, indent=2, default=json_default))


def load_metrics(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / METRICS).read_text())
