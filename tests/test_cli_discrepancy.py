"""`xai discrepancy` end to end through the real executable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FAST, load_json, only_run_dir, run_xai
from xai_cli.dig.search import bisection_rounds

pytestmark = pytest.mark.slow

SMALL = ["discrepancy.anchors=40", "discrepancy.neighbours=3", "discrepancy.n_steps=16", "discrepancy.realism_points=100"]


def test_discrepancy_end_to_end_on_digits(tmp_path: Path) -> None:
    result = run_xai("discrepancy", *FAST, *SMALL, "discrepancy.explain_index=7", "discrepancy.n_shown=2", root=tmp_path)
    assert result.returncode == 0, result.stderr
    run = only_run_dir(tmp_path, "discrepancy")
    m = load_json(run / "metrics.json")
    assert m["command"] == "discrepancy" and m["space"] == "latent"
    assert set(m["models"]) == {"cnn", "svm_rbf"} and 0 <= m["models"]["cnn"]["accuracy"]["test"] <= 1
    assert 0 <= m["disagreement_rate"] <= 1 and set(m["disagreement_by_class"]) == {str(c) for c in range(10)}
    assert Path(m["vae"]["checkpoint"]).is_dir() and m["vae"]["recon_error"] > 0
    assert 0 < m["n_segments"] <= (40 + 25) * 3 and m["n_segments_with_discrepancy"] <= m["n_segments"]
    # one query walks every segment, one per bisection round; tracing adds the same per round it runs
    tracing = m["tracing"]
    search_queries = 1 + m["bisection_rounds"] if m["n_areas"] else 1
    assert m["model_queries"] == search_queries + tracing["model_queries"]
    per_round = 1 + bisection_rounds(tracing["n_steps"], tracing["eps"])
    assert tracing["rounds_run"] <= tracing["model_queries"] <= per_round * tracing["rounds_run"] <= per_round * 3
    assert m["n_areas_with_traced"] == m["n_areas"] + tracing["n_areas"]
    bc = m["border_check"]
    assert bc["inside_ok"] == bc["inside"] == 2 * m["n_areas_with_traced"] and bc["outside_ok"] == bc["outside"]
    if tracing["n_segments"]:
        traced = np.load(run / "traced.npz")
        assert len(traced["segment_from"]) == tracing["n_segments"] and len(traced["t_start"]) == tracing["n_areas"]
    saved = np.load(run / "intervals.npz")
    assert len(saved["t_start"]) == m["n_areas"] and saved["z_start_in"].shape == (m["n_areas"], 10)
    assert (saved["t_start"] <= saved["t_end"]).all()
    records = load_json(run / "intervals.json")["areas"]
    assert len(records) == m["n_areas"]
    if records:
        assert set(records[0]["predictions"]) == {"cnn", "svm_rbf"} and len(records[0]["points"]["start_in"]) == 10
    assert m["explained"]["index"] == 7 and len(m["explained"]["nearest"]) == min(3, m["n_areas"])
    report = (run / "report.md").read_text()
    assert report.index("Test image #7") < report.index("## Models")  # the explained image leads
    assert (run / "report.html").read_text().count("data:image/png;base64,") == sum(
        (run / "figures").joinpath(p).is_file() for p in ["area_lengths.png", "class_pairs.png"]) + len(
        m["figures"]["segments"]) + len(m["figures"]["explained"]) + 1  # + the explained image
    (run / "report.md").unlink()
    rerendered = run_xai("report", str(run), root=tmp_path)
    assert rerendered.returncode == 0, rerendered.stderr
    assert (run / "report.md").read_text() == report


def test_bad_discrepancy_settings_fail_in_one_line(tmp_path: Path) -> None:
    bad_space = run_xai("discrepancy", *FAST, "space=pixels", root=tmp_path)
    assert bad_space.returncode != 0 and "unknown space 'pixels'; valid: input, latent" in bad_space.stderr and "Traceback" not in bad_space.stderr
    one_model = run_xai("discrepancy", *FAST, "classifiers=[svm_rbf]", root=tmp_path)
    assert one_model.returncode != 0 and "at least two" in one_model.stderr and "Traceback" not in one_model.stderr
