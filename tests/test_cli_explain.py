"""`xai explain` end to end through the real executable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FAST, load_json, only_run_dir, run_xai

pytestmark = pytest.mark.slow

KEYS = {"wall_time_s", "time_per_image_s", "deletion_auc", "insertion_auc", "deletion_auc_random", "insertion_auc_random",
        "stability", "randomization_similarity", "kept"}


def test_explain_end_to_end(tmp_path: Path) -> None:
    result = run_xai("explain", *FAST, "explainers=[integrated_gradients,lime]", "explain.indices=[0,5,9]",
                     "explain.stability.n_images=2", "explain.stability.n_samples=2", root=tmp_path)
    assert result.returncode == 0, result.stderr
    run = only_run_dir(tmp_path, "explain")
    metrics = load_json(run / "metrics.json")
    assert metrics["command"] == "explain" and metrics["indices"] == [0, 5, 9] and metrics["target"] == "predicted"
    assert set(metrics["explainers"]) == {"integrated_gradients", "lime"}
    assert set(metrics["explainers"]["lime"]["cnn"]) == KEYS and set(metrics["explainers"]["lime"]["svm_rbf"]) == KEYS
    assert metrics["explainers"]["lime"]["svm_rbf"]["randomization_similarity"] is None
    assert "gradients" in metrics["explainers"]["integrated_gradients"]["svm_rbf"]["skipped"]
    saved = np.load(run / "attributions.npz")
    assert saved["cnn/integrated_gradients"].shape == (3, 28, 28) and saved["svm_rbf/lime"].shape == (3, 28, 28)
    assert "svm_rbf/integrated_gradients" not in saved.files
    assert list(saved["indices"]) == [0, 5, 9]
    html = (run / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3  # two attribution grids and the time/faithfulness plot
    assert "Not applicable to svm_rbf: integrated_gradients" in (run / "report.md").read_text()
