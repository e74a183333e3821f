from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import yaml

from xai_cli.report.document import Document, fmt
from xai_cli.report.sweep import summarise_sweep, write_sweep_summary
from xai_cli.report.writer import RunReport, atomic_write


def test_document_renders_the_same_content_to_markdown_and_html(tmp_path: Path) -> None:
    report = RunReport(tmp_path)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = report.save_figure(fig, "line")
    doc = Document("Title <1>")
    doc.heading("Models")
    doc.paragraph("a & b")
    doc.table(["model", "acc"], [["cnn", 0.98765], ["svm", 1]])
    doc.figure(path, "a line")
    md = doc.to_markdown()
    assert "| cnn | 0.9877 |" in md and "![a line](figures/line.png)" in md and md.startswith("# Title <1>")
    html = doc.to_html(tmp_path)
    assert "Title &lt;1&gt;" in html and "a &amp; b" in html and "<td>0.9877</td>" in html
    assert "data:image/png;base64," in html and "figures/line.png" not in html  # embedded, not linked


def test_fmt_reads_well() -> None:
    assert fmt(1199882) == "1,199,882" and fmt(0.123456) == "0.1235" and fmt(None) == "—" and fmt(True) == "True"


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "metrics.json"
    atomic_write(target, "old")

    def crash(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("xai_cli.report.writer.os.replace", crash)
    with pytest.raises(OSError):
        atomic_write(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary file left behind


def _job(sweep: Path, num: int, overrides: list[str], metrics: dict | None, error: str | None = None) -> None:
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))
    if error is not None:
        (job / "error.txt").write_text(error + "\n\ntraceback...")


def test_sweep_summary_has_swept_columns_status_and_metrics(tmp_path: Path) -> None:
    (tmp_path / "multirun.yaml").write_text("{}")
    _job(tmp_path, 0, ["seed=1", "dataset=digits"], {"models": {"cnn": {"accuracy": {"test": 0.9}}}, "command": "train"})
    _job(tmp_path, 1, ["seed=2", "dataset=digits"], None, error="ValueError: bad")
    _job(tmp_path, 10, ["seed=3", "dataset=digits"], {"models": {"cnn": {"accuracy": {"test": 0.8}}}})
    headers, rows = summarise_sweep(tmp_path)
    assert headers == ["job", "seed", "status", "models.cnn.accuracy.test"]  # dataset did not vary
    assert [r[0] for r in rows] == ["0", "1", "10"]  # numeric job order
    assert rows[1][2] == "failed: ValueError: bad" and rows[1][3] is None
    write_sweep_summary(tmp_path)
    assert (tmp_path / "summary.csv").read_text().splitlines()[0] == "job,seed,status,models.cnn.accuracy.test"
    assert "failed: ValueError: bad" in (tmp_path / "summary.html").read_text()


def test_text_from_the_data_is_drawn_as_written() -> None:
    """A class folder named like `$\\foo$` is a name, not mathtext (which failed the whole figure)."""
    from xai_cli.report.figures import heatmap

    fig = heatmap(np.eye(2, dtype=int), [r"$\foo$", "a$b"], ["x", "y"], r"classes $\foo$", value_format="{:d}")
    fig.canvas.draw()  # would raise ValueError from mathtext's parser
    assert fig.axes[0].get_yticklabels()[0].get_text() == r"$\foo$"


def test_a_hand_edited_metrics_file_is_one_line(tmp_path: Path) -> None:
    from xai_cli.errors import UserError
    from xai_cli.report.rerender import rerender

    (tmp_path / "metrics.json").write_text(json.dumps({"command": "explain", "schema_version": 1}))
    with pytest.raises(UserError, match=r"metrics.json lacks what the explain report shows \(KeyError"):
        rerender(tmp_path)
    assert not (tmp_path / "report.html").exists()
