"""`xai counterfactual` end to end through the real executable, on digits with small budgets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import xai_cli as xai
from tests.conftest import FAST, load_json, only_run_dir, run_dirs, run_xai

pytestmark = pytest.mark.slow

SMALL = [*FAST, "generator.fit.max_epochs=2", "generator.fit.min_train_images=0", "counterfactual.n_images=4",
         "methods.wachter.search_rounds=2", "methods.wachter.steps=15",
         "methods.prototype.search_rounds=2", "methods.prototype.steps=15",
         "methods.latent_rl.fit.steps=20", "methods.latent_rl.fit.batch_size=32"]
TRAINER = {"max_epochs": 1, "limit_train_batches": 3, "limit_val_batches": 1}  # FAST, for the API
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

    # the actor is trained once per (classifier, VAE), in the store the Python API shares: it loads it
    again = xai.counterfactual("cnn", "digits", methods=["latent_rl"], n_images=4, trainer=TRAINER,
                               method_settings={"latent_rl": {"fit": {"steps": 20, "batch_size": 32}}},
                               generator={"fit.max_epochs": 2, "fit.min_train_images": 0}, model_dir=tmp_path / "models")
    assert again.metrics["classifier"]["from_store"] and again.metrics["methods"]["latent_rl"]["actor_from_store"]
    assert again.metrics["methods"]["latent_rl"]["validity"] == m["methods"]["latent_rl"]["validity"]


@pytest.mark.parametrize(("args", "message"), [
    ([*FAST, "methods=[wachter,dice]"], "unknown methods 'dice'; valid: latent_rl, prototype, wachter"),
    ([*FAST, "counterfactual.methods=[latent_rl]"], "counterfactual.methods is now methods"),
    ([*FAST, "counterfactual.registry.wachter.steps=3"], "counterfactual.registry.wachter.steps is now methods.wachter.steps"),
    ([*SMALL, "counterfactual.target=12"], "classes are 0..9"),  # the runner's checks (more in tests/api)
])
def test_bad_settings_fail_in_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_xai("counterfactual", *args, root=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr, result.stderr
    assert "training it" not in result.stderr  # checked before any model is trained
    assert not any((run / "metrics.json").exists() for run in run_dirs(tmp_path, "counterfactual"))
