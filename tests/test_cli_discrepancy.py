"""`xai discrepancy` end to end through the real executable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from tests.conftest import FAST, compose_config, load_json, only_run_dir, run_xai
from xai_cli.dig.pool import unanimous
from xai_cli.training.store import ModelStore

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


def test_input_space_dig_on_moons_finds_areas_only_where_the_models_differ(tmp_path: Path) -> None:
    overrides = ["dataset=moons", "classifiers=[mlp,svm_rbf]"]
    result = run_xai("discrepancy", "space=input", *overrides, root=tmp_path)
    assert result.returncode == 0, result.stderr
    run = only_run_dir(tmp_path, "discrepancy")
    m = load_json(run / "metrics.json")
    assert m["space"] == "input" and m["vae"] is None and m["n_areas"] > 0
    assert (run / "figures" / "plane.png").is_file()

    # the same models, from the store, judge every area independently
    cfg = compose_config("discrepancy", [*overrides, f"paths.model_dir={tmp_path / 'models'}"])
    data = instantiate(cfg.dataset)
    data.setup()
    store = ModelStore(cfg.paths.model_dir)
    models = [store.get(n, c, data, cfg.dataset, cfg.trainer, cfg.seed) for n, c in cfg.classifiers.items()]
    assert not any(s.trained_now for s in models)

    def disagree(points: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(points, dtype=torch.float32)
        return ~unanimous(np.stack([s.model.predict_proba(x).argmax(1) for s in models]))

    a = np.load(run / "intervals.npz")
    middle = (a["z_start_in"] + a["z_end_in"]) / 2
    assert disagree(a["z_start_in"]).all() and disagree(a["z_end_in"]).all() and disagree(middle).mean() > 0.95
    # and nowhere else on the searched segments: at the search's own grid, every disagreement lies in an
    # area; on a grid four times finer, only strips narrower than a grid step can have been missed
    ends = data.split("train").x.numpy()[a["segments"]]
    for steps, allowed in ((m["search"]["n_steps"], 0.0), (4 * m["search"]["n_steps"], 1e-3)):
        t = np.linspace(0, 1, steps)
        points = ends[:, :1] + t[None, :, None] * (ends[:, 1:] - ends[:, :1])
        in_area = np.zeros(points.shape[:2], dtype=bool)
        for seg, t0, t1 in zip(a["segment"], a["t_start"], a["t_end"]):
            in_area[seg] |= (t >= t0 - 1e-6) & (t <= t1 + 1e-6)
        assert disagree(points[~in_area].reshape(-1, 2)).mean() <= allowed


def test_bad_discrepancy_settings_fail_in_one_line(tmp_path: Path) -> None:
    bad_space = run_xai("discrepancy", *FAST, "space=pixels", root=tmp_path)
    assert bad_space.returncode != 0 and "unknown space 'pixels'; valid: input, latent" in bad_space.stderr and "Traceback" not in bad_space.stderr
    one_model = run_xai("discrepancy", *FAST, "classifiers=[svm_rbf]", root=tmp_path)
    assert one_model.returncode != 0 and "at least two" in one_model.stderr and "Traceback" not in one_model.stderr
