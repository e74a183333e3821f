"""The β-VAE: shapes, training through the model store, and reconstructions better than the mean image."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from tests.conftest import compose_config
from xai_cli.errors import UserError
from xai_cli.models.generators.beta_vae import BetaVAE
from xai_cli.training.store import ModelStore


def test_shapes_and_the_loss_terms() -> None:
    torch.manual_seed(0)
    vae = BetaVAE((1, 28, 28), latent_dim=6, beta=4.0)
    x = torch.rand(5, 1, 28, 28)
    assert vae.encode(x).shape == (5, 6) and vae.decode(torch.zeros(3, 6)).shape == (3, 1, 28, 28)
    assert 0 <= float(vae.decode(torch.randn(3, 6)).min()) and float(vae.decode(torch.randn(3, 6)).max()) <= 1
    recon, kl = vae.loss_terms(x)
    torch.manual_seed(1)
    total = vae.training_loss(x, torch.zeros(5))
    torch.manual_seed(1)
    r, k = vae.loss_terms(x)
    assert float(total) == pytest.approx(float(r + 4.0 * k), rel=1e-6) and float(kl) >= 0
    with pytest.raises(UserError, match="halves 30x30 images 2 times, so their sides must be multiples of 4"):
        BetaVAE((1, 30, 30))


@pytest.mark.parametrize("shape, features", [((1, 28, 28), (64, 7, 7)), ((3, 32, 32), (64, 8, 8)),
                                             ((3, 48, 48), (64, 6, 6)), ((3, 64, 64), (64, 8, 8))])
def test_the_vae_scales_with_the_image_up_to_64_px(shape: tuple[int, int, int], features: tuple[int, ...]) -> None:
    vae = BetaVAE(shape)
    assert vae._feature_shape == features  # a third stage above 32 px keeps the bottleneck's input small
    assert vae(torch.rand(2, *shape)).shape == (2, *shape)
    with pytest.raises(UserError, match=r"beta_vae generates images up to 64 px, these are 128x128: "
                                        r"set dataset.image_size=64"):
        BetaVAE((3, 128, 128))


@pytest.mark.slow
def test_trains_in_the_store_and_reconstructs_digits_better_than_the_mean_image(tmp_path: Path) -> None:
    cfg = compose_config("discrepancy", ["generator.fit.min_train_images=0", "generator.fit.max_epochs=30",
                                         f"paths.model_dir={tmp_path}"])
    data = instantiate(cfg.dataset)
    data.setup()
    store = ModelStore(tmp_path)
    stored = store.get("beta_vae", cfg.generator, data, cfg.dataset, cfg.trainer, cfg.seed)
    assert stored.trained_now and isinstance(stored.model, BetaVAE)
    quality = stored.model.evaluate(data.split("test").x)
    assert quality["recon_error"] < 0.5 * quality["mean_image_mse"], quality
    assert quality["kl"] > 1.0  # the latent code carries information: no posterior collapse
    again = store.get("beta_vae", cfg.generator, data, cfg.dataset, cfg.trainer, cfg.seed)
    assert not again.trained_now
    x = data.split("test").x[:8]
    torch.testing.assert_close(again.model.encode(x), stored.model.encode(x))
