"""A user's own colour images, end to end: digits tinted by class (built from the embedded digits), saved as
an npz with class names, at 32 and 64 px, through discrepancy and counterfactual."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import xai_cli as xai
from tests.conftest import DIGIT_NAMES, write_npz

TRAINER = {"max_epochs": 2, "limit_val_batches": 1}
VAE = {"fit.max_epochs": 2, "fit.min_train_images": 0}
CF_BUDGET = {"wachter": {"search_rounds": 2, "steps": 15}, "latent_rl": {"fit": {"steps": 20, "batch_size": 32}}}


@pytest.fixture(scope="module")
def colour_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_npz(tmp_path_factory.mktemp("colour") / "tinted.npz", classes=3, per_class=60, size=32)


def test_discrepancy_on_colour_images_names_the_classes(colour_npz: Path, tmp_path: Path) -> None:
    data = xai.datasets.load("npz", file=str(colour_npz), channels=3, image_size=32)
    assert (data.input_shape, data.class_names) == ((3, 32, 32), list(DIGIT_NAMES[:3]))
    result = xai.discrepancy(["cnn", "logreg"], data, generator=VAE, trainer=TRAINER, model_dir=tmp_path)
    m = result.metrics
    assert list(m["disagreement_by_class"]) == list(DIGIT_NAMES[:3])
    assert m["dataset"]["class_names"] == list(DIGIT_NAMES[:3])
    assert m["vae"] is not None and m["space"] == "latent"


@pytest.mark.parametrize("size", [32, 64])
def test_counterfactuals_of_colour_images_at_their_own_size(colour_npz: Path, tmp_path: Path, size: int) -> None:
    data = xai.datasets.load("npz", file=str(colour_npz), channels=3, image_size=size)
    result = xai.counterfactual("cnn", data, methods=["wachter", "latent_rl"], target=2, n_images=4,
                                method_settings=CF_BUDGET, generator=VAE, trainer=TRAINER, model_dir=tmp_path)
    saved = result.counterfactuals
    assert saved["originals"].shape == (4, 3, size, size)
    assert saved["latent_rl"].shape == (4, 3, size, size)  # decoded by a β-VAE of the data's own size
    assert np.isfinite(saved["latent_rl"]).all() and 0 <= saved["latent_rl"].min() <= saved["latent_rl"].max() <= 1
    assert result.metrics["methods"]["latent_rl"]["n"] == 4 - result.metrics["predicted"].count(2)


def test_uncertainty_trains_its_gan_on_colour_images(colour_npz: Path, tmp_path: Path, monkeypatch) -> None:
    """stylegan2_lite at 32 px in colour; the sample grids show colour images captioned with class names."""
    import xai_cli.analysis.uncertainty as uncertainty_module

    captured: list[tuple[tuple[int, ...], list[str]]] = []
    grid = uncertainty_module.sample_grid
    monkeypatch.setattr(uncertainty_module, "sample_grid", lambda images, captions, *a, **k: captured.append(
        (tuple(images.shape), list(captions))) or grid(images, captions, *a, **k))
    data = xai.datasets.load("npz", file=str(colour_npz), channels=3, image_size=32)
    result = xai.uncertainty("cnn", data, generator_settings={"fit.steps": 10, "fit.checkpoint_every": 5},
                             n_per_point=4, grid_points=3, n_shown=2, n_realism=50, trainer=TRAINER,
                             model_dir=tmp_path)
    assert result.metrics["generator"]["name"].startswith("stylegan2_lite")
    assert captured and all(shape[1:] == (3, 32, 32) for shape, _ in captured)
    assert {c.split(" (")[0] for _, captions in captured for c in captions} <= set(DIGIT_NAMES[:3])
