from __future__ import annotations


import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from tests.conftest import CONFIG_DIR, compose_config
from xai_cli.explainers.base import NotApplicable
from xai_cli.explainers.gradient import DeepLiftExplainer, DeepShapExplainer, IntegratedGradientsExplainer
from xai_cli.explainers.perturbation import LimeExplainer, image_predictor, lime_superpixel_weights
from xai_cli.explainers.segmentation import superpixels
from xai_cli.training.store import ModelStore

EXPLAINERS = sorted(p.stem for p in (CONFIG_DIR / "explainer").glob("*.yaml"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """A digits cnn (2 epochs, ~95 %) and svm_rbf from a private store, with test images and background."""
    cfg = compose_config("train", ["trainer.max_epochs=2"])
    data = instantiate(cfg.dataset)
    store = ModelStore(tmp_path_factory.mktemp("models"))
    models = {n: store.get(n, cfg.classifiers[n], data, cfg.dataset, cfg.trainer, cfg.seed).model for n in cfg.classifiers}
    test = data.split("test")
    return models, test.x[:4], test.y[:4], data.split("train").x[:32]


def _explainer(name: str, **overrides: object):
    cfg = compose_config("explain", [f"explainers=[{name}]", *(f"explainers.{name}.{k}={v}" for k, v in overrides.items())])
    return instantiate(cfg.explainers[name])


def test_the_issue_s_explainers_all_have_configs() -> None:
    assert {"deep_shap", "gradient_shap", "kernel_shap", "partition_shap", "lime", "integrated_gradients", "saliency",
            "deeplift", "grad_cam", "occlusion"} <= set(EXPLAINERS)


@pytest.mark.parametrize("name", EXPLAINERS)
def test_every_explainer_gives_one_map_per_image(trained, name: str) -> None:
    models, x, y, background = trained
    explainer = _explainer(name)
    explainer.set_background(background)
    for model_name, model in models.items():
        try:
            maps = explainer.explain(model, x[:2], y[:2])
        except NotApplicable as reason:
            assert model_name == "svm_rbf" and explainer.needs_gradients, reason
            continue
        assert maps.shape == (2, 28, 28) and torch.isfinite(maps).all() and maps.abs().sum() > 0


def _logit_gap(model, x, target, reference):
    with torch.no_grad():
        return model(x)[range(len(x)), target] - model(reference)[range(len(x)), target]


def test_integrated_gradients_completeness(trained) -> None:
    model = trained[0]["cnn"]
    x, y = trained[1], trained[2]
    maps = IntegratedGradientsExplainer(n_steps=300).explain(model, x, y)
    gap = _logit_gap(model, x, y, torch.zeros_like(x))
    assert torch.allclose(maps.flatten(1).sum(1), gap, rtol=0.02, atol=0.02)


def test_deeplift_completeness(trained) -> None:
    model = trained[0]["cnn"]
    x, y = trained[1], trained[2]
    maps = DeepLiftExplainer().explain(model, x, y)
    assert torch.allclose(maps.flatten(1).sum(1), _logit_gap(model, x, y, torch.zeros_like(x)), rtol=1e-3, atol=1e-3)


def test_deep_shap_sums_to_the_gap_from_the_mean_background_output(trained) -> None:
    model, (x, y, background) = trained[0]["cnn"], trained[1:]
    explainer = DeepShapExplainer()
    explainer.set_background(background)
    maps = explainer.explain(model, x, y)
    with torch.no_grad():
        expected = model(x)[range(len(x)), y] - model(background)[:, y].mean(0)
    assert torch.allclose(maps.flatten(1).sum(1), expected, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("name", ["lime", "kernel_shap"])
def test_sampling_methods_are_deterministic_under_a_seed(trained, name: str) -> None:
    model, x, y = trained[0]["svm_rbf"], trained[1][:2], trained[2][:2]
    first = _explainer(name, seed=3).explain(model, x, y)
    again = _explainer(name, seed=3).explain(model, x, y)
    other = _explainer(name, seed=4).explain(model, x, y)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_lime_equals_lime_image_explain_instance(trained) -> None:
    """Our vectorised sampling must give lime_image's own explanation, weight for weight."""
    from lime import lime_image

    model, image, label = trained[0]["svm_rbf"], trained[1][0], int(trained[2][0])
    rgb = np.repeat(image.permute(1, 2, 0).numpy().astype(np.float64), 3, axis=-1)
    segments = superpixels(rgb[..., :1])

    def classifier_fn(batch: np.ndarray) -> np.ndarray:
        return model.predict_proba(torch.from_numpy(batch[..., :1]).permute(0, 3, 1, 2).float())

    reference = lime_image.LimeImageExplainer(random_state=7).explain_instance(
        rgb, classifier_fn, labels=(label,), top_labels=None, hide_color=0.0, num_samples=300, batch_size=300,
        segmentation_fn=lambda _: segments)
    expected = np.zeros(segments.max() + 1)
    for segment, weight in reference.local_exp[label]:
        expected[segment] = weight
    predict = image_predictor(lambda x: torch.from_numpy(model.predict_proba(x)), rgb[..., :1], segments, 0.0)
    ours = lime_superpixel_weights(predict, segments, label, 300, 0.25, 7)
    assert np.allclose(ours, expected, atol=1e-10)
    assert len(np.unique(segments)) >= 40  # SLIC, not lime's 1-2 quickshift segments


def test_gradient_methods_decline_the_svm_and_grad_cam_declines_an_mlp(trained) -> None:
    with pytest.raises(NotApplicable, match="gradients"):
        DeepLiftExplainer().explain(trained[0]["svm_rbf"], trained[1], trained[2])
    mlp = instantiate(compose_config("train", ["classifiers=[mlp]"]).classifiers.mlp.model)
    with pytest.raises(NotApplicable, match="convolutional"):
        _explainer("grad_cam").explain(mlp, trained[1], trained[2])


def test_lime_segments_are_used_as_superpixels(trained) -> None:
    maps = LimeExplainer(n_samples=200).explain(trained[0]["svm_rbf"], trained[1][:1], trained[2][:1])[0].numpy()
    segments = superpixels(trained[1][0].permute(1, 2, 0).numpy().astype(np.float64))
    for s in np.unique(segments):
        assert np.ptp(maps[segments == s]) == 0  # one weight per superpixel


def test_deep_shap_equals_shap_deep_explainer_for_the_explained_class(trained) -> None:
    import shap

    model, (x, y, background) = trained[0]["cnn"], trained[1:]
    target = torch.tensor([int(y[0]), int(y[1]), (int(y[2]) + 1) % 10, int(y[3])])  # one non-predicted target too
    explainer = DeepShapExplainer()
    explainer.set_background(background)
    ours = explainer.explain(model, x, target)
    full = np.asarray(shap.DeepExplainer(model.eval(), background).shap_values(x, check_additivity=False))  # (N,C,H,W,K)
    reference = full[np.arange(4), ..., target.numpy()].sum(1)
    assert np.allclose(ours.numpy(), reference, atol=1e-5)


def test_integrated_gradients_is_more_faithful_than_a_random_order(trained) -> None:
    from xai_cli.explainers.base import probability_function
    from xai_cli.metrics.faithfulness import deletion_insertion

    model, x, y = trained[0]["cnn"], trained[1], trained[2]
    maps = IntegratedGradientsExplainer().explain(model, x, y)
    f = probability_function(model)
    predict = lambda b: f(b).detach().numpy()  # noqa: E731
    ours, _ = deletion_insertion(predict, x, maps, y)
    random, _ = deletion_insertion(predict, x, maps, y, random_order=True)
    assert ours.mean() < 0.5 * random.mean()


class _IgnoresLeftHalf(torch.nn.Module):
    """A trained classifier that sees only the right half of the image."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        mask = torch.ones(1, 1, 28, 28)
        mask[..., :14] = 0.0
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x * self.mask)


@pytest.mark.parametrize("name", EXPLAINERS)
def test_what_the_model_ignores_gets_no_attribution(trained, name: str) -> None:
    models, x, y, background = trained
    model = _IgnoresLeftHalf(models["cnn"]).eval()
    explainer = _explainer(name)
    explainer.set_background(background)
    maps = explainer.explain(model, x[:2], y[:2]).abs()
    # an occlusion window straddling the middle shares its effect with the ignored pixels it covers
    edge = 14 - explainer.patch(28, 28)[0] if name == "occlusion" else 14
    ignored, used = maps[..., :edge], maps[..., 14:]
    if name in ("lime", "kernel_shap"):
        # superpixels straddle the middle, so judge only those wholly inside the ignored half
        for image, m in zip(x[:2], maps):
            segments = torch.from_numpy(superpixels(image.permute(1, 2, 0).numpy().astype(np.float64)))
            inside = [s for s in segments.unique() if (segments == s).nonzero()[:, 1].max() < 14]
            weights = torch.stack([m[segments == s].mean() for s in inside]) if inside else torch.zeros(1)
            assert weights.max() < 0.1 * m.max()
    else:
        assert ignored.mean() < 0.02 * used.mean(), (float(ignored.mean()), float(used.mean()))


def test_kernel_shap_gives_exact_shapley_values_on_an_additive_model() -> None:
    """For f(x) = sum w*x, the Shapley value of a superpixel is the sum of w*(x - baseline) over its pixels."""
    from xai_cli.explainers.perturbation import kernel_shap_values

    rng = np.random.default_rng(0)
    image = rng.random((28, 28, 1))
    segments = superpixels(image)
    w = rng.normal(size=(28, 28))

    def predict(batch: np.ndarray) -> torch.Tensor:  # (n, H, W, 1) -> (n, 2): class 1 is additive
        score = (batch[..., 0] * w).reshape(len(batch), -1).sum(1)
        return torch.from_numpy(np.stack([np.zeros_like(score), score], 1))

    def coalitions_of(segments: np.ndarray):
        return image_predictor(lambda x: predict(x.permute(0, 2, 3, 1).double().numpy()), image, segments, 0.0)

    values = kernel_shap_values(coalitions_of(segments), segments, 1, 1000, seed=0)
    exact = np.array([(w * image[..., 0])[segments == s].sum() for s in range(segments.max() + 1)])
    assert np.allclose(values, exact, atol=1e-6)
    # one segment: the whole change from the baseline
    one = np.zeros((28, 28), dtype=int)
    whole = kernel_shap_values(coalitions_of(one), one, 1, 1000, seed=0)
    assert np.allclose(whole, [(w * image[..., 0]).sum()])


def test_colour_images_keep_their_superpixels_under_noise() -> None:
    """SLIC in Lab space collapsed slightly noisy RGB digits into one segment (the stability estimate's
    inputs); in RGB they keep the segments of the clean image's scale."""
    import xai_cli as xai

    x = xai.datasets.load("digits", channels=3, image_size=64).split("test").x[:3]
    noisy = (x + 0.01 * torch.randn_like(x, generator=torch.Generator().manual_seed(0))).permute(0, 2, 3, 1)
    for image in noisy.numpy().astype(np.float64):
        assert superpixels(image).max() + 1 >= 40
