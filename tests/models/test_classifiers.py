from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from tests.conftest import CONFIG_DIR, compose_config
from xai_cli.models.classifiers.base import TorchClassifier
from xai_cli.models.classifiers.ensemble import Ensemble
from xai_cli.models.classifiers.lenet import LeNet

ALL = sorted(p.stem for p in (CONFIG_DIR / "classifier").glob("*.yaml"))
TORCH = [n for n in ALL if n not in ("svm_rbf", "logreg", "file")]  # file: tests/models/test_files.py
# Parameter counts of the architectures as the sources give them (28x28 grey, 10 classes).
EXPECTED_PARAMS = {"cnn": 1_199_882, "keras_cnn": 412_778, "lenet": 21_840, "small_cnn": 54_410, "mlp": 540_006}


def build(name: str, *overrides: str):
    if name == "module":  # a network of one's own, by import path
        overrides = ("classifiers.module.model.module._target_=tests.models.nets.TinyNet", *overrides)
    cfg = compose_config("train", [f"classifiers=[{name}]", *overrides])
    torch.manual_seed(0)
    return instantiate(cfg.classifiers[name].model)


def test_every_spec_classifier_has_a_config() -> None:
    spec = {"lenet", "cnn", "small_cnn", "mlp", "gabornet", "resnet18", "keras_cnn", "svm_rbf", "logreg",
            "ensemble", "densenet121", "module"}
    assert spec <= set(ALL)
    assert {p.stem for p in (CONFIG_DIR / "classifier").glob("*.yaml")} == set(ALL)


@pytest.mark.parametrize("name", TORCH)
def test_torch_classifier_shapes_and_probabilities(name: str) -> None:
    overrides = ["dataset.channels=3"] if name == "densenet121" else []
    model = build(name, *overrides)
    c = 3 if name == "densenet121" else 1
    x = torch.rand(3, c, 28, 28)
    assert model(x).shape == (3, 10)
    probs = model.predict_proba(x)
    assert probs.shape == (3, 10) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    if name in EXPECTED_PARAMS:
        assert model.num_parameters() == EXPECTED_PARAMS[name]


@pytest.mark.parametrize("name", TORCH)
def test_the_explainers_fast_layout_keeps_every_classifiers_function(name: str) -> None:
    """Explainers switch torch models to channels-last in place (speed); the function must not change."""
    from xai_cli.explainers.base import use_fast_layout

    c = 3 if name == "densenet121" else 1
    model = build(name, *(["dataset.channels=3"] if c == 3 else [])).eval()
    x = torch.rand(4, c, 28, 28)
    with torch.no_grad():
        before = model(x)
        use_fast_layout(model)
        after = model(x)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    assert torch.allclose(before, after, atol=1e-5)


@pytest.mark.parametrize("name", TORCH)
def test_each_activation_module_is_used_once_and_not_in_place(name: str) -> None:
    """shap's DeepExplainer and captum's DeepLift need one activation module per use, never in-place."""
    model = build(name, *(["dataset.channels=3"] if name == "densenet121" else [])).eval()
    calls: dict[int, int] = {}
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert relus, "expected ReLU modules"
    assert not any(m.inplace for m in relus)
    hooks = [m.register_forward_hook(lambda mod, i, o: calls.__setitem__(id(mod), calls.get(id(mod), 0) + 1))
             for m in relus]
    model(torch.rand(1, 3 if name == "densenet121" else 1, 28, 28))
    for h in hooks:
        h.remove()
    assert max(calls.values()) == 1


def test_mlp_takes_plain_features() -> None:
    cfg = compose_config("train", ["dataset=moons", "classifiers=[mlp]"])
    model = instantiate(cfg.classifiers.mlp.model)
    assert model(torch.rand(5, 2)).shape == (5, 2)


def test_cnn_sizes_its_head_for_other_image_sizes() -> None:
    model = build("cnn", "dataset=npz", "dataset.file=x.npz", "dataset.num_classes=3", "dataset.image_size=32",
                  "dataset.channels=3")
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 3)


def test_ensemble_averages_member_probabilities() -> None:
    torch.manual_seed(0)
    ens = Ensemble(lambda: LeNet(), n_members=3).eval()
    x = torch.rand(4, 1, 28, 28)
    members = np.mean([m.predict_proba(x) for m in ens.members], axis=0)
    assert np.allclose(ens.predict_proba(x), members, atol=1e-6)
    first = [m.features[0].weight for m in ens.members]
    assert not torch.equal(first[0], first[1])  # members start from different weights


@pytest.mark.parametrize("name", ["svm_rbf", "logreg"])
def test_sklearn_classifiers_fit_and_predict(name: str) -> None:
    cfg = compose_config("train", [f"classifiers=[{name}]"])
    data = instantiate(cfg.dataset)
    model = instantiate(cfg.classifiers[name].model)
    model.set_seed(0)
    train = data.split("train")
    model.fit(train.x, train.y)
    probs = model.predict_proba(data.split("test").x)
    assert probs.shape == (360, 10) and np.allclose(probs.sum(1), 1.0, atol=1e-4)
    assert (probs.argmax(1) == data.split("test").y.numpy()).mean() > 0.9
    assert model.num_parameters() > 10 * 784


def test_gabor_layer_learns_its_filter_parameters() -> None:
    model = build("gabornet")
    gabor = model.features[0]
    loss = model(torch.rand(4, 1, 28, 28)).sum()
    loss.backward()
    assert gabor.theta.grad is not None and gabor.theta.grad.abs().sum() > 0
    assert isinstance(model, TorchClassifier)


@pytest.mark.parametrize("n_classes", [2, 3, 10])
def test_blas_rbf_svc_equals_libsvm(n_classes: int) -> None:
    from sklearn.datasets import load_digits
    from sklearn.svm import SVC

    from xai_cli.models.classifiers.sklearn_models import BlasRBFSVC

    x, y = load_digits(n_class=n_classes, return_X_y=True)
    x = x / 16.0
    fast = BlasRBFSVC(C=10, gamma="scale").fit(x, y)
    slow = SVC(C=10, gamma="scale").fit(x, y)
    assert np.allclose(fast.decision_function(x), slow.decision_function(x), rtol=0, atol=1e-9)
    assert np.array_equal(fast.predict(x), slow.predict(x))


@pytest.mark.parametrize("standardize,held_out", [(False, False), (True, False), (True, True)])
def test_masked_svm_predictions_are_those_of_the_built_images(standardize: bool, held_out: bool) -> None:
    """KernelSHAP's and LIME's perturbed images scored without building their kernel rows pixel by pixel
    (`MaskedRows`): the same probabilities as the built images, with and without a scaler in front."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.datasets import load_digits

    from xai_cli.explainers.perturbation import coalition_predictor, image_predictor
    from xai_cli.explainers.base import probability_function
    from xai_cli.models.classifiers.sklearn_models import BlasRBFSVC, MaskedRows, SklearnClassifier

    x, y = load_digits(return_X_y=True)
    images = torch.from_numpy(x / 16.0).float().reshape(-1, 1, 8, 8)
    svm = SklearnClassifier(CalibratedClassifierCV(BlasRBFSVC(C=10, gamma="scale"), cv=3, ensemble=False),
                            standardize=standardize)
    if held_out:  # the SVM inside a FrozenEstimator (held-out calibration)
        svm.fit_calibrated_on(images[:900], y[:900], images[900:1200], y[900:1200])
    else:
        svm.fit(images[:1200], y[:1200])
    rng = np.random.default_rng(0)
    segments = np.arange(64).reshape(8, 8) // 5  # 13 regions of up to 5 pixels
    answered = []  # whether the masked rows described the inputs (else the built images' kernel is used)
    original = MaskedRows.describes
    for i in range(1200, 1205):
        image = images[i].numpy().transpose(1, 2, 0).astype(np.float64)
        coalitions = (rng.random((300, segments.max() + 1)) < 0.5).astype(float)
        fast = coalition_predictor(svm, image, segments, 0.3)
        built = image_predictor(probability_function(svm), image, segments, 0.3)(coalitions)
        MaskedRows.describes = lambda self, X, svc: answered.append(original(self, X, svc)) or answered[-1]
        try:
            np.testing.assert_allclose(fast(coalitions), built, rtol=0, atol=1e-6)
        finally:
            MaskedRows.describes = original
    assert answered and all(answered)  # the masked kernel answered every time
    from sklearn.linear_model import LogisticRegression
    assert SklearnClassifier(LogisticRegression()).fit(images[:100], y[:100]).masked_predictor(
        image.transpose(2, 0, 1), 0.0, segments) is None  # no RBF SVM: the images are built


def test_held_out_calibration_fits_the_model_once_and_calibrates_it_on_the_other_images(tmp_path: Path) -> None:
    """`fit_calibrated_on`: the SVM is fitted on the training images only (its support vectors are among them),
    one Platt scaling is fitted on the held-out ones, and the model is saved and read back through skops."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.datasets import load_digits
    from sklearn.frozen import FrozenEstimator

    from xai_cli.models.classifiers.sklearn_models import BlasRBFSVC, SklearnClassifier

    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    svm = SklearnClassifier(CalibratedClassifierCV(BlasRBFSVC(C=10, gamma="scale"), cv=3, ensemble=False))
    assert svm.calibrates
    svm.fit_calibrated_on(x[:900], y[:900], x[900:1300], y[900:1300])
    calibrated = svm.pipeline.steps[-1][1]
    (only,) = calibrated.calibrated_classifiers_  # one calibration, no cross-validation fits
    inner = only.estimator.estimator
    assert isinstance(only.estimator, FrozenEstimator) and isinstance(inner, BlasRBFSVC)
    training_rows = set(map(bytes, x[:900]))
    assert all(bytes(v) in training_rows for v in inner.support_vectors_)
    probs = svm.predict_proba(x[1300:])
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert (probs.argmax(1) == y[1300:]).mean() > 0.9
    svm.save(tmp_path / "svm.skops")
    again = SklearnClassifier(CalibratedClassifierCV(BlasRBFSVC(C=10, gamma="scale"), cv=3, ensemble=False))
    again.load(tmp_path / "svm.skops")
    np.testing.assert_array_equal(again.predict_proba(x[1300:]), probs)
