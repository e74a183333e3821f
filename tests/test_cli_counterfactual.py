"""`xai counterfactual` end to end through the real executable, on digits with small budgets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FAST, load_json, only_run_dir, run_dirs, run_xai

pytestmark = pytest.mark.slow

BUDGET = {"wachter": ["methods.wachter.search_rounds=2", "methods.wachter.steps=15"],
          "prototype": ["methods.prototype.search_rounds=2", "methods.prototype.steps=15"],
          "latent_rl": ["methods.latent_rl.fit.steps=20", "methods.latent_rl.fit.batch_size=32"]}


def small(*methods: str) -> list[str]:
    """A small run of `methods` (default: all three), each on a small budget."""
    chosen = methods or tuple(BUDGET)
    return [*FAST, "generator.fit.max_epochs=2", "generator.fit.min_train_images=0", "counterfactual.n_images=4",
            f"methods=[{','.join(chosen)}]", *[o for m in chosen for o in BUDGET[m]]]


SMALL = small()
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
    again = run_xai("counterfactual", *small("latent_rl"), root=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "training it" not in again.stderr
    second = load_json(max(run_dirs(tmp_path, "counterfactual")) / "metrics.json")
    assert second["methods"]["latent_rl"]["actor_from_store"] is True
    assert second["methods"]["latent_rl"]["validity"] == m["methods"]["latent_rl"]["validity"]


def test_the_svm_gets_latent_rl_and_a_reason_for_the_gradient_methods(tmp_path: Path) -> None:
    result = run_xai("counterfactual", *small("wachter", "latent_rl"), "classifier=svm_rbf",
                     "counterfactual.target=3", root=tmp_path)
    assert result.returncode == 0, result.stderr
    m = load_json(only_run_dir(tmp_path, "counterfactual") / "metrics.json")
    assert "gradients" in m["methods"]["wachter"]["skipped"]
    rl = m["methods"]["latent_rl"]
    assert KEYS <= set(rl) and set(m["targets"]) == {3}
    assert rl["n"] == 4 - m["predicted"].count(3)  # images already predicted 3 need no change


@pytest.mark.parametrize(("args", "message"), [
    ([*FAST, "methods=[wachter,dice]"], "unknown methods 'dice'; valid: latent_rl, prototype, wachter"),
    ([*FAST, "counterfactual.methods=[latent_rl]"], "counterfactual.methods is now methods"),
    ([*FAST, "counterfactual.registry.wachter.steps=3"], "counterfactual.registry.wachter.steps is now methods.wachter.steps"),
    ([*SMALL, "counterfactual.target=12"], "classes are 0..9"),
    ([*SMALL, "counterfactual.target=seven"], "use 'second' or a class index"),
])
def test_bad_settings_fail_in_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_xai("counterfactual", *args, root=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr, result.stderr
    assert "training it" not in result.stderr  # checked before any model is trained
    assert not any((run / "metrics.json").exists() for run in run_dirs(tmp_path, "counterfactual"))
