"""`xai discrepancy` end to end through the real executable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FAST, load_json, only_run_dir, run_xai

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
    assert m["model_queries"] == 1 + m["bisection_rounds"] if m["n_areas"] else m["model_queries"] == 1
    bc = m["border_check"]
    assert bc["inside_ok"] == bc["inside"] == 2 * m["n_areas"] and bc["outside_ok"] == bc["outside"]
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
