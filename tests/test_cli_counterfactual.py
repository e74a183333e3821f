"""`xai counterfactual` end to end through the real executable, on digits with small budgets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FAST, load_json, only_run_dir, run_dirs, run_xai

pytestmark = pytest.mark.slow

SMALL = [*FAST, "generator.fit.max_epochs=2", "generator.fit.min_train_images=0", "counterfactual.n_images=4",
         "counterfactual.registry.wachter.search_rounds=2", "counterfactual.registry.wachter.steps=15",
         "counterfactual.registry.prototype.search_rounds=2", "counterfactual.registry.prototype.steps=15",
         "counterfactual.registry.latent_rl.fit.steps=20", "counterfactual.registry.latent_rl.fit.batch_size=32"]
KEYS = {"validity", "n", "l1", "l2", "sparsity", "in_distribution", "nearest_train_rms", "time_per_cf_s"}


def test_counterfactual_end_to_end_on_digits(tmp_path: Path) -> None:
    result = run_xai("counterfactual", *SMALL, root=tmp_path)
    assert result.returncode == 0, result.stderr
    run = only_run_dir(tmp_path, "counterfactual")
    m = load_json(run / "metrics.json")
    assert m["command"] == "counterfactual" and list(m["methods"]) == ["wachter", "prototype", "latent_rl"]
    saved = np.load(run / "counterfactuals.npz")
    x = saved["originals"]
    for name, r in m["methods"].items():
        assert KEYS <= set(r), (name, r)
        valid = saved[f"{name}_valid"]
        assert r["n"] == 4 and r["validity"] == pytest.approx(valid.mean())  # every default target differs from ŷ
        cf = saved[name]
        assert cf.shape == x.shape and cf.min() >= 0 and cf.max() <= 1
        assert np.array_equal(cf[~valid], x[~valid])  # no counterfactual kept where the target was not reached
        if valid.any():
            l1 = np.abs(cf[valid] - x[valid]).reshape(int(valid.sum()), -1).sum(1).mean()
            assert r["l1"] == pytest.approx(l1, rel=1e-4) and r["l1"] > 0
        else:
            assert r["l1"] is None
    assert m["methods"]["latent_rl"]["actor_from_store"] is False
    assert m["targets"] == saved["targets"].tolist() and m["indices"] == [0, 1, 2, 3]
    html = (run / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 1 and "nearest training image" in html
    assert (run / "figures" / "counterfactuals.png").is_file()

    # the actor is trained once per (classifier, VAE): a rerun loads it
    again = run_xai("counterfactual", *SMALL, "counterfactual.methods=[latent_rl]", root=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "training it" not in again.stderr
    second = load_json(max(run_dirs(tmp_path, "counterfactual")) / "metrics.json")
    assert second["methods"]["latent_rl"]["actor_from_store"] is True
    assert second["methods"]["latent_rl"]["validity"] == m["methods"]["latent_rl"]["validity"]


def test_the_svm_gets_latent_rl_and_a_reason_for_the_gradient_methods(tmp_path: Path) -> None:
    result = run_xai("counterfactual", *SMALL, "classifier=svm_rbf", "counterfactual.methods=[wachter,latent_rl]",
                     "counterfactual.target=3", root=tmp_path)
    assert result.returncode == 0, result.stderr
    m = load_json(only_run_dir(tmp_path, "counterfactual") / "metrics.json")
    assert "gradients" in m["methods"]["wachter"]["skipped"]
    rl = m["methods"]["latent_rl"]
    assert KEYS <= set(rl) and set(m["targets"]) == {3}
    assert rl["n"] == 4 - m["predicted"].count(3)  # images already predicted 3 need no change


@pytest.mark.parametrize(("override", "message"), [
    ("counterfactual.methods=[wachter,dice]", "valid: wachter, prototype, latent_rl"),
    ("counterfactual.target=12", "classes are 0..9"),
    ("counterfactual.target=seven", "use 'second' or a class index"),
])
def test_bad_settings_fail_in_one_line(tmp_path: Path, override: str, message: str) -> None:
    result = run_xai("counterfactual", *SMALL, override, root=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr, result.stderr
    assert "training it" not in result.stderr  # checked before any model is trained
    assert not any((run / "metrics.json").exists() for run in run_dirs(tmp_path, "counterfactual"))
