from __future__ import annotations

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.colors import TwoSlopeNorm

from xai_cli.metrics.faithfulness import deletion_insertion
from xai_cli.metrics.randomization import rank_similarity
from xai_cli.metrics.stability import local_lipschitz
from xai_cli.report.attribution_figures import CMAP


def _linear_model(weights: torch.Tensor):
    """P(class 1) = sigmoid(sum w*x - 2): a model whose true pixel importance is known."""
    def predict(x: torch.Tensor) -> np.ndarray:
        p1 = torch.sigmoid((x[:, 0] * weights).flatten(1).sum(1) - 2.0)
        return torch.stack([1 - p1, p1], 1).numpy()
    return predict


def test_true_importance_beats_random_and_reversed_orders() -> None:
    gen = torch.Generator().manual_seed(0)
    weights = torch.rand(8, 8, generator=gen)
    x = torch.ones(5, 1, 8, 8)
    target = torch.ones(5, dtype=torch.long)
    predict = _linear_model(weights)
    good = weights.expand(5, 8, 8)
    d_good, i_good = deletion_insertion(predict, x, good, target, steps=16)
    d_bad, i_bad = deletion_insertion(predict, x, -good, target, steps=16)
    d_rand, i_rand = deletion_insertion(predict, x, good, target, steps=16, random_order=True)
    assert (d_good < d_rand).all() and (d_rand < d_bad).all()
    assert (i_good > i_rand).all() and (i_rand > i_bad).all()
    assert np.all((0 <= d_good) & (d_good <= 1))


def test_curve_ends_are_the_image_and_the_baseline() -> None:
    x = torch.ones(1, 1, 4, 4)
    def predict(batch: torch.Tensor) -> np.ndarray:  # probability = share of lit pixels
        p = batch.flatten(1).mean(1)
        return torch.stack([1 - p, p], 1).numpy()
    d, i = deletion_insertion(predict, x, torch.rand(1, 4, 4), torch.tensor([1]), steps=16)
    assert np.isclose(d[0], 0.5) and np.isclose(i[0], 0.5)  # linear ramps down / up: area 1/2


def test_local_lipschitz_is_zero_for_a_constant_explanation_and_positive_otherwise() -> None:
    x, t = torch.rand(3, 1, 8, 8), torch.zeros(3, dtype=torch.long)
    constant = local_lipschitz(lambda xs, ts: torch.ones(len(xs), 8, 8), x, t)
    follows_input = local_lipschitz(lambda xs, ts: xs[:, 0], x, t)
    assert np.allclose(constant, 0.0) and (follows_input > 0).all()


def test_rank_similarity() -> None:
    a = torch.rand(4, 8, 8)
    assert np.isclose(rank_similarity(a, a), 1.0)
    assert np.isclose(rank_similarity(a, -a), 1.0)  # magnitudes are compared
    assert abs(rank_similarity(a, torch.rand(4, 8, 8))) < 0.5


def test_positive_attribution_is_drawn_red_and_negative_blue() -> None:
    cmap, norm = colormaps[CMAP], TwoSlopeNorm(0.0, -1.0, 1.0)
    r, g, b, _ = cmap(norm(1.0))
    assert r > 0.9 and b < 0.1
    r, g, b, _ = cmap(norm(-1.0))
    assert b > 0.9 and r < 0.1
    assert np.allclose(cmap(norm(0.0))[:3], 1.0, atol=0.01)  # zero is white


def test_deletion_auc_equals_quantus_pixel_flipping() -> None:
    """Our deletion curve is Quantus' PixelFlipping (black baseline), with the unperturbed image prepended."""
    quantus = __import__("pytest").importorskip("quantus")
    from tests.conftest import compose_config
    from hydra.utils import instantiate
    from xai_cli.explainers.gradient import IntegratedGradientsExplainer

    cfg = compose_config("train", ["classifiers=[small_cnn]"])
    data = instantiate(cfg.dataset)
    torch.manual_seed(0)
    model = instantiate(cfg.classifiers.small_cnn.model).eval()  # untrained is fine: both see the same model
    x, y = data.split("test").x[:6], data.split("test").y[:6]
    maps = IntegratedGradientsExplainer().explain(model, x, y)

    def predict(batch: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(model(batch), -1).numpy()

    ours, _ = deletion_insertion(predict, x, maps, y, steps=16)
    curves = np.asarray(quantus.PixelFlipping(features_in_step=49, perturb_baseline="black", disable_warnings=True)(
        model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=maps.numpy()[:, None], channel_first=True,
        softmax=True, device="cpu"))
    start = predict(x)[np.arange(6), y.numpy()]
    reference = np.trapezoid(np.concatenate([start[:, None], curves], 1), np.linspace(0, 1, 17), axis=1)
    assert np.allclose(ours, reference, atol=1e-6)
