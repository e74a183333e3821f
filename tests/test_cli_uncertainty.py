"""`xai uncertainty` end to end through the real executable, on moons (the 2-D toy)."""

from __future__ import annotations

from pathlib import Path

import pytest

import xai_cli as xai
from tests.conftest import load_json, only_run_dir, run_xai

pytestmark = pytest.mark.slow

MOONS = ["dataset=moons", "generator.fit.steps=1500", "uncertainty.n_per_point=20"]
EVALUATION = {"msp_pearson", "msp_spearman", "msp_mae", "class_agreement", "n_samples", "grid", "per_point"}


def test_uncertainty_end_to_end_on_moons(tmp_path: Path) -> None:
    result = run_xai("uncertainty", *MOONS, root=tmp_path)
    assert result.returncode == 0, result.stderr
    run = only_run_dir(tmp_path, "uncertainty")
    m = load_json(run / "metrics.json")
    assert m["command"] == "uncertainty" and m["classifier"]["name"] == "mlp" and m["generator"]["name"] == "mlp_gan_mlp"
    e = m["evaluation"]
    assert EVALUATION <= set(e) and e["n_samples"] == 2 * 7 * 20
    assert e["grid"][0] >= 0.5 and e["grid"][-1] == 1.0
    # a briefly trained GAN already obeys: the class it is given is the class the classifier sees, and the
    # confidence it is given moves the classifier's confidence the same way
    assert e["class_agreement"] >= 0.9 and e["msp_pearson"] >= 0.6, e
    assert e["per_point"][-1]["msp_out_mean"] > e["per_point"][0]["msp_out_mean"] + 0.2
    assert m["generator"]["steps"] == 1500
    html = (run / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2  # the MSP scatter and the plane
    assert {p.name for p in (run / "figures").iterdir()} == {"msp_scatter.png", "plane.png"}

    # the GAN (and the classifier) come from the store, which the Python API shares; this time one test
    # point is explained too
    second = xai.uncertainty("mlp", "moons", generator_settings={"fit.steps": 1500}, n_per_point=20, explain_index=3,
                             model_dir=tmp_path / "models").metrics
    assert second["classifier"]["from_store"] and second["generator"]["from_store"]
    assert second["evaluation"] == e  # same seed, same numbers
    x = second["explanation"]
    conditions = [r["msp_condition"] for r in x["row"]]
    assert x["index"] == 3 and conditions[0] == pytest.approx(x["msp"]) and conditions == sorted(conditions)[::-1]
    assert x["reconstruction_rmse"] < 0.2  # a 2-D point the generator can reach (the moons span about 3 units)


def test_a_test_index_out_of_range_is_one_line_before_anything_trains(tmp_path: Path) -> None:
    result = run_xai("uncertainty", *MOONS, "uncertainty.explain_index=100000", root=tmp_path)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "explain_index [100000] out of range: the test split has" in errors[0], result.stderr
    assert "training it" not in result.stderr


def test_uncertainty_on_digits_with_stylegan2_lite_explains_an_image_and_scores_realism(tmp_path: Path) -> None:
    result = run_xai("uncertainty", "generator=stylegan2_lite", "generator.fit.steps=20", "generator.fit.batch_size=16",
                     "generator.model.generator.channels=[16,16,8,8]", "generator.model.discriminator.channels=[8,8,16,16]",
                     "trainer.max_epochs=2", "uncertainty.n_per_point=5", "uncertainty.n_realism=200",
                     "uncertainty.explain_index=7", root=tmp_path)
    assert result.returncode == 0, result.stderr
    run = only_run_dir(tmp_path, "uncertainty")
    m = load_json(run / "metrics.json")
    assert m["generator"]["name"] == "stylegan2_lite_cnn" and m["generator"]["steps"] == 20
    r = m["evaluation"]["realism"]
    assert r["n_images"] == 200 and r["kid_real_vs_real"] < r["kid"]  # 20 steps cannot look real yet
    bands = r["by_msp"]  # every test image in exactly one band; a KID wherever a band has enough of them
    assert [b["msp"] for b in bands] == [[0.0, 0.6], [0.6, 0.8], [0.8, 0.95], [0.95, 0.99], [0.99, 1.0]]
    assert sum(b["n_real"] for b in bands) == m["dataset"]["sizes"]["test"]
    for b in bands:
        if b["n_real"] >= 20:
            assert b["n"] == min(b["n_real"], 200) and b["kid_real_vs_real"] < b["kid"]
            assert b["feature_norm"] > 0 and b["kid_scaled_real_vs_real"] < b["kid_scaled"]
        else:
            assert b["kid"] is None and "fewer than 20" in b["note"]
    assert any(b["kid"] is not None for b in bands)
    x = m["explanation"]
    assert x["index"] == 7 and 0 < x["reconstruction_rmse"] < 1 and len(x["row"]) >= 2
    assert {p.name for p in (run / "figures").iterdir()} == {"msp_scatter.png", "samples_msp_1.0.png",
                                                             "samples_msp_0.7.png", "explained_7.png"}
    html = (run / "report.html").read_text()
    assert "KID" in html and "inverted into the generator" in html
