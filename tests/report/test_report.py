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
    assert "src='data:image/png;base64," in html and "src='figures" not in html  # embedded: the file travels alone


def test_every_figure_opens_at_its_natural_size(tmp_path: Path) -> None:
    """The page fits figures to a column; each must be one click from its full size (a zoom on the embedded
    image, and a link to the PNG beside the report)."""
    import re

    report = RunReport(tmp_path)
    fig, ax = plt.subplots(figsize=(17, 26))  # a 1700 × 2600 px grid, as the attribution grids are
    doc = Document("grids")
    doc.figure(report.save_figure(fig, "grid"), "attributions")
    doc.figure(report.save_figure(plt.subplots()[0], "strip"), "a strip", wide=True)
    html = doc.to_html(tmp_path)
    figures = re.findall(r"<figure.*?</figure>", html, flags=re.S)
    assert len(figures) == 2
    for figure, name in zip(figures, ("grid", "strip")):
        assert "onclick=" in figure and "classList.toggle('full')" in figure
        assert f"<a href='figures/{name}.png'>full size</a>" in figure
    assert "figure.full img{max-width:none" in html  # the zoomed state is not clipped to the column


def test_fmt_reads_well() -> None:
    assert fmt(1199882) == "1,199,882" and fmt(0.123456) == "0.1235" and fmt(None) == "—" and fmt(True) == "True"
    assert fmt(838.342) == "838.3" and fmt(12.3456) == "12.35" and fmt(1.23456) == "1.235"
    assert fmt(12345.67) == "12,345.7" and fmt(-0.5) == "-0.5000" and fmt(float("nan")) == "nan"


def test_inline_code_and_pipes_render_as_meant() -> None:
    doc = Document("t")
    doc.paragraph("set `explain.n_images=32` <now>")
    doc.table(["pair", "rate"], [["cnn|svm_rbf", 0.02]])
    html = doc.to_html({})
    assert "<code>explain.n_images=32</code> &lt;now&gt;" in html and "`" not in html
    assert "| cnn\\|svm_rbf | 0.0200 |" in doc.to_markdown()


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


def test_jobs_the_scheduler_ended_are_listed_with_how_it_ended(tmp_path: Path) -> None:
    """A job killed in its run (no metrics, no error.txt), one cancelled while queued (no run directory at
    all), one stopped by its time limit (its own error.txt says so) and one never seen: each has a status."""
    from xai_cli.report.sweep import write_scheduler_record

    (tmp_path / "multirun.yaml").write_text("{}")
    _job(tmp_path, 0, ["seed=1"], {"models": {"cnn": {"accuracy": {"test": 0.9}}}})
    _job(tmp_path, 1, ["seed=2"], None)
    _job(tmp_path, 2, ["seed=3"], None, error="timed out: the job neared hydra.launcher.timeout_min")
    _job(tmp_path, 4, ["seed=5"], None)
    write_scheduler_record(tmp_path, {1: {"state": "OUT_OF_MEMORY", "scheduler_id": "42_1", "overrides": ["seed=2"]},
                                      3: {"state": "CANCELLED by 0", "scheduler_id": "42_3", "overrides": ["seed=4"]}})
    headers, rows = summarise_sweep(tmp_path)
    status = {r[0]: r[headers.index("status")] for r in rows}
    assert status == {"0": "ok", "1": "out of memory (scheduler job 42_1)",
                      "2": "timed out: the job neared hydra.launcher.timeout_min",
                      "3": "cancelled (scheduler job 42_3)", "4": "unfinished"}
    assert [r[headers.index("seed")] for r in rows] == ["1", "2", "3", "5", "4"]


def test_a_job_stopped_by_its_time_limit_says_so_wherever_the_signal_found_it() -> None:
    """submitit's signal handler raises inside whatever the job was running; code that wraps exceptions
    (inspect.getfullargspec's `unsupported callable`) must not hide that the time ran out."""
    from submitit.core.utils import UncompletedJobError

    from xai_cli.app import describe_failure

    def interrupted() -> None:
        try:
            raise UncompletedJobError("Job not requeued because: timed-out too many times.")
        except Exception as ex:
            raise TypeError("unsupported callable") from ex

    with pytest.raises(TypeError) as info:
        interrupted()
    assert describe_failure(info.value) == ("timed out: the job neared hydra.launcher.timeout_min and was not "
                                            "requeued (timed-out too many times); raise timeout_min or "
                                            "max_num_timeout")
    assert describe_failure(ValueError("bad")) == "ValueError: bad"


def _markdown_cells(line: str) -> list[str]:
    """The cells of one Markdown table row, as a renderer splits them (an escaped pipe stays in its cell)."""
    import re

    return re.split(r"(?<!\\)\|", line.strip().strip("|"))


def test_sweep_summary_reads_well(tmp_path: Path) -> None:
    """Varying settings and metrics first, a swept setting once, pipes escaped, each job linked."""
    (tmp_path / "multirun.yaml").write_text("{}")
    for num, seed, acc in ((0, 1, 0.91), (1, 2, 0.93)):
        metrics = {"seed": seed, "dataset": {"n_train": 1000}, "models": {"cnn": {"accuracy": {"test": acc}}},
                   "disagreement": {"cnn|svm_rbf": acc / 10}}
        _job(tmp_path, num, [f"seed={seed}"], metrics)
    (tmp_path / "0" / "report.html").write_text("<html></html>")
    headers, rows = summarise_sweep(tmp_path)
    assert headers == ["job", "seed", "status", "disagreement.cnn|svm_rbf", "models.cnn.accuracy.test",
                       "dataset.n_train"]  # the constant size last, `seed` once
    write_sweep_summary(tmp_path)
    table = [line for line in (tmp_path / "summary.md").read_text().splitlines() if line.startswith("|")]
    assert len(table) == 4 and {len(_markdown_cells(line)) for line in table} == {len(headers)}
    assert table[2].startswith("| [0](0/report.html) |") and table[3].startswith("| 1 |")  # job 1 has no report
    assert "<a href='0/report.html'>0</a>" in (tmp_path / "summary.html").read_text()


def test_the_console_table_shows_what_fits_and_says_what_it_left_out() -> None:
    from xai_cli.report.sweep import format_table

    headers = ["job", "seed", "status", "models.cnn.accuracy.test", *[f"dataset.size_{i}" for i in range(10)]]
    rows = [["0", "1", "ok", 0.91, *range(10)], ["1", "2", "ok", 0.93, *range(10)]]
    text = format_table(headers, rows, width=80)
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "models.cnn.accuracy.test" in text.splitlines()[0] and "0.9300" in text
    assert text.splitlines()[-1].startswith("(+") and "more columns" in text


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


def test_colour_bars_say_something() -> None:
    """Two models' disagreement is one number: no colour bar over it. Counts get whole-number ticks."""
    from xai_cli.report.figures import heatmap

    pair = heatmap(np.array([[0.0, 0.02], [0.02, 0.0]]), ["cnn", "svm"], ["cnn", "svm"], "pair", mask_diagonal=True)
    assert len(pair.axes) == 1
    counts = heatmap(np.array([[50, 3], [1, 46]]), ["a", "b"], ["a", "b"], "confusion", value_format="{:d}")
    counts.canvas.draw()
    ticks = counts.axes[1].get_yticks()
    assert len(pair.axes) == 1 and len(ticks) > 1 and all(float(t).is_integer() for t in ticks)
