"""`xai consistency` end to end through the real executable."""

from __future__ import annotations

from pathlib import Path

import pytest

import xai_cli as xai
from tests.conftest import FAST, load_json, only_run_dir, run_xai

pytestmark = pytest.mark.slow

ROW_KEYS = {"architecture", "explainer", "alpha", "C", "C_ci95", "S_mean", "S_null_mean", "C_by_perturbation",
            "accuracy_mean", "accuracy_std", "accuracy_by_copy"}


def test_consistency_end_to_end_on_digits(tmp_path: Path) -> None:
    result = run_xai("consistency", *FAST, "classifiers=[mlp,svm_rbf]", "explainers=[integrated_gradients]",
                     "consistency.n_per_class=6", "consistency.model_agnostic_explainer.n_samples=100",
                     root=tmp_path)
    assert result.returncode == 0, result.stderr
    run = only_run_dir(tmp_path, "consistency")
    m = load_json(run / "metrics.json")
    assert m["command"] == "consistency" and m["perturbations"] == ["seed", "shuffle", "dropout"]
    rows = {r["architecture"]: r for r in m["table"]}
    assert set(rows) == {"mlp", "svm_rbf"} and all(set(r) == ROW_KEYS for r in m["table"])
    mlp, svm = rows["mlp"], rows["svm_rbf"]
    assert mlp["explainer"] == "integrated_gradients" and svm["explainer"] == "kernel_shap"  # SVM: model-agnostic
    # 3 copies per perturbation -> 3 pairs each; the SVM has no dropout
    assert mlp["alpha"] == 9 and svm["alpha"] == 6 and svm["C_by_perturbation"]["dropout"] is None
    assert len(mlp["accuracy_by_copy"]) == 7 and len(svm["accuracy_by_copy"]) == 5
    for row in m["table"]:
        assert 0 <= row["C"] <= 1 and all(c is None or 0 <= c <= 1 for c in row["C_by_perturbation"].values())
    assert len(m["pairs"]) == 15 and set(m["pairs"][0]) == {"architecture", "explainer", "perturbation", "a", "b",
                                                              "S", "S_null", "jsd", "ks", "wilcoxon"}
    for row in m["table"]:  # C with its interval, S beside its permutation null, from the same pairs
        mine = [q for q in m["pairs"] if q["architecture"] == row["architecture"]]
        assert row["C_ci95"][0] <= row["C"] <= row["C_ci95"][1]
        assert row["S_mean"] == pytest.approx(1 - row["C"])
        assert row["S_null_mean"] == pytest.approx(sum(q["S_null"] for q in mine) / len(mine))
        assert all(0 <= q["S_null"] <= 1 for q in mine)
    html = (run / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4  # S heat map and copies' maps, per architecture
    # a rerun, here from Python, takes every copy from the store: nothing new is trained into it
    entries = sorted(p.name for p in (tmp_path / "models").iterdir())
    again = xai.consistency(["mlp"], "digits", perturbation="dropout", explainers=["integrated_gradients"],
                            n_per_class=6, model_dir=tmp_path / "models",
                            trainer={"max_epochs": 1, "limit_train_batches": 3, "limit_val_batches": 1})
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == entries
    # and reads the maps the first run kept in each copy's entry: one file per copy and explainer, none new
    assert len(list((tmp_path / "models").glob("mlp-*/explanations/*.npy"))) == 7
    assert len(list((tmp_path / "models").glob("svm_rbf-*/explanations/*.npy"))) == 5
    assert again.metrics["table"][0]["C_by_perturbation"]["dropout"] == mlp["C_by_perturbation"]["dropout"]
