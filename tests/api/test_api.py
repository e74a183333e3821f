"""The Python API, in-process: datasets from arrays, a user's own torch module and scikit-learn estimator,
results that save, load and re-render."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

import xai_cli as xai
from tests.conftest import compose_config, load_json, run_xai
from xai_cli.analysis.result import load_result
from xai_cli.report.rerender import rerender
from xai_cli.errors import UserError
from xai_cli.explainers.perturbation import OcclusionExplainer

SMALL = {"stability": {"n_images": 2, "n_samples": 1}, "randomization": {"n_images": 2}}
TRAINER = {"max_epochs": 1, "limit_train_batches": 3, "limit_val_batches": 1}


@pytest.fixture(scope="module")
def digits() -> xai.datasets.ArrayDataModule:
    return xai.datasets.load("digits")


@pytest.fixture(scope="module")
def net(digits) -> nn.Module:
    """A user's own network: plain nn.Module, a few Adam steps on digits (not an xai class)."""
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 13 * 13, 10))
    train = digits.split("train")
    optimiser = torch.optim.Adam(module.parameters(), lr=3e-3)
    for _ in range(60):
        optimiser.zero_grad()
        nn.functional.cross_entropy(module(train.x), train.y).backward()
        optimiser.step()
    return module.eval()


@pytest.fixture(scope="module")
def logreg(digits) -> LogisticRegression:
    train = digits.split("train")
    return LogisticRegression(max_iter=200).fit(train.x.reshape(len(train), -1).numpy(), train.y.numpy())


def test_every_export_is_what_it_names_whatever_was_imported_first() -> None:
    """A subpackage named like an API function would shadow it once imported (xai_cli.uncertainty was one)."""
    import importlib
    import pkgutil

    for module in pkgutil.walk_packages(xai.__path__, "xai_cli."):
        if not module.name.startswith("xai_cli.configs"):
            importlib.import_module(module.name)
    for name, (module, attribute) in xai._EXPORTS.items():
        expected = importlib.import_module(module) if attribute is None else getattr(importlib.import_module(module), attribute)
        assert getattr(xai, name) is expected, name


def test_from_arrays_takes_common_layouts_and_refuses_silent_nonsense() -> None:
    rng = np.random.default_rng(0)
    x = (rng.random((100, 12, 12, 3)) * 255).astype(np.uint8)  # channels last, uint8
    y = np.arange(100) % 5
    data = xai.datasets.from_arrays(x[:80], y[:80], x[80:], y[80:], class_names=list("abcde"))
    assert data.input_shape == (3, 12, 12) and data.num_classes == 5 and data.class_names == list("abcde")
    test = data.split("test")
    assert torch.allclose(test.x[0], torch.from_numpy(x[80].transpose(2, 0, 1) / 255.0).float())
    assert data.summary()["sizes"] == {"train": 72, "val": 8, "test": 20}  # val held out of train
    other = x.copy()
    other[0, 0, 0, 0] ^= 1
    changed = xai.datasets.from_arrays(other[:80], y[:80], other[80:], y[80:], class_names=list("abcde"))
    assert changed.store_identity()["content_sha256"] != data.store_identity()["content_sha256"]
    bad = x[:80].astype(np.float32)
    with pytest.raises(UserError, match="pixel values lie in"):
        xai.datasets.from_arrays(bad, y[:80], x[80:], y[80:])  # floats 0..255: not silently rescaled
    bad = bad / 255
    bad[3, 1, 1, 0] = np.nan
    with pytest.raises(UserError, match="NaN or infinite"):
        xai.datasets.from_arrays(bad, y[:80], x[80:], y[80:])
    with pytest.raises(UserError, match="labels for"):
        xai.datasets.from_arrays(x[:80], y[:79], x[80:], y[80:])
    with pytest.raises(UserError, match="cannot hold a validation split out of train"):
        xai.datasets.from_arrays(x[:20], y[:20], x[80:], y[80:])  # 2 of 20 for val cannot cover 5 classes


def test_load_configures_a_dataset_as_the_cli_does(digits) -> None:
    cli = compose_config("train")
    from omegaconf import OmegaConf

    assert OmegaConf.to_container(digits.store_identity()) == OmegaConf.to_container(cli.dataset, resolve=True)
    assert xai.datasets.load("digits", image_size=32).input_shape == (1, 32, 32)
    assert xai.model_spec("cnn", digits, **{"fit.max_epochs": 2}).config.fit.max_epochs == 2
    with pytest.raises(UserError, match="cnn has no setting fit.max_epoch;"):
        xai.model_spec("cnn", digits, **{"fit.max_epoch": 2})
    with pytest.raises(UserError, match="unknown dataset 'nope'; choose one of .*digits"):
        xai.datasets.load("nope")
    with pytest.raises(UserError, match="has no setting colour"):
        xai.datasets.load("digits", colour=3)


def test_explain_a_users_torch_module_and_sklearn_estimator(digits, net, logreg, tmp_path: Path) -> None:
    result = xai.explain({"net": net, "lr": logreg}, digits, explainers=["saliency", "occlusion"], n_images=3,
                         seed=0, model_dir=tmp_path / "models", **SMALL)
    m = result.metrics
    saliency, occlusion = m["explainers"]["saliency"], m["explainers"]["occlusion"]
    assert 0.0 <= saliency["net"]["deletion_auc"] <= 1.0 and saliency["net"]["randomization_similarity"] is not None
    assert "gradients" in saliency["lr"]["skipped"]  # a scikit-learn estimator has none
    assert occlusion["lr"]["randomization_similarity"] is None and "deletion_auc" in occlusion["lr"]
    assert m["models"]["net"]["source"] == "given" and not m["models"]["net"]["from_store"]
    own_accuracy = float((net(digits.split("test").x).argmax(1) == digits.split("test").y).float().mean())
    assert m["models"]["net"]["accuracy"]["test"] == pytest.approx(own_accuracy)
    assert result.attributions["net/saliency"].shape == (3, 28, 28) and "lr/saliency" not in result.attributions
    assert not (tmp_path / "models").exists()  # nothing was trained or stored

    html = result.save(tmp_path / "run")
    run = html.parent
    saved = load_json(run / "metrics.json")
    assert saved["schema_version"] == 1 and saved["explainers"]["saliency"]["net"] == pytest.approx(saliency["net"])
    assert html.read_text().count("data:image/png;base64,") == 3  # two attribution grids and the time plot
    assert np.array_equal(np.load(run / "attributions.npz")["net/occlusion"], result.attributions["net/occlusion"])
    with pytest.raises(UserError, match="already holds a finished run"):
        result.save(run)  # an earlier run is never overwritten
    loaded = load_result(run)
    assert isinstance(loaded, xai.ExplainResult) and loaded.to_markdown() == (run / "report.md").read_text()
    assert np.array_equal(loaded.attributions["net/saliency"], result.attributions["net/saliency"])
    copy_dir = loaded.save(tmp_path / "copy").parent  # a loaded run saved elsewhere is whole
    assert (copy_dir / "report.html").read_text() == html.read_text()
    assert sorted(p.name for p in (copy_dir / "figures").iterdir()) == sorted(p.name for p in (run / "figures").iterdir())


def test_explainers_as_instances_and_callables_as_models(digits, logreg, tmp_path: Path) -> None:
    def probabilities(x: np.ndarray) -> np.ndarray:  # any callable returning class probabilities
        return logreg.predict_proba(x.reshape(len(x), -1))

    result = xai.explain({"fn": probabilities, "lr": logreg}, digits, explainers={"occ8": OcclusionExplainer(window=8)},
                         indices=[4, 2], model_dir=tmp_path, **SMALL)
    m = result.metrics
    assert m["indices"] == [4, 2] and m["settings"]["explainers"]["occ8"]["window"] == 8
    # the callable and the estimator are the same function: the same maps and the same faithfulness
    assert np.allclose(result.attributions["fn/occ8"], result.attributions["lr/occ8"], atol=1e-6)
    assert m["explainers"]["occ8"]["fn"]["deletion_auc"] == pytest.approx(m["explainers"]["occ8"]["lr"]["deletion_auc"])


def test_a_models_contract_is_checked_before_anything_runs(digits, tmp_path: Path) -> None:
    wrong = nn.Sequential(nn.Flatten(), nn.Linear(784, 5))
    with pytest.raises(UserError, match="model 'wrong' outputs 5 classes, dataset has 10"):
        xai.explain({"cnn": "cnn", "wrong": wrong}, digits, explainers=["saliency"], n_images=1, model_dir=tmp_path)
    with pytest.raises(UserError, match="does not return probabilities"):
        xai.explain({"raw": lambda x: np.ones((len(x), 10))}, digits, explainers=["occlusion"], model_dir=tmp_path)
    with pytest.raises(UserError, match="is not fitted"):
        xai.explain({"lr": LogisticRegression()}, digits, explainers=["occlusion"], model_dir=tmp_path)
    with pytest.raises(UserError, match="unknown explainer shapley; valid: .*saliency"):
        xai.explain({"lr": LogisticRegression()}, digits, explainers=["shapley"], model_dir=tmp_path)
    with pytest.raises(UserError, match=r"indices \[360\] out of range"):
        xai.explain(["cnn"], digits, explainers=["saliency"], indices=[360], model_dir=tmp_path)
    assert not tmp_path.joinpath("cnn").exists() and not list(tmp_path.glob("cnn-*"))  # refused before training


def test_report_rereads_old_runs_and_refuses_what_it_cannot(tmp_path: Path, digits, logreg) -> None:
    run = xai.explain({"lr": logreg}, digits, explainers=["occlusion"], n_images=2, model_dir=tmp_path,
                      **SMALL).save(tmp_path / "run").parent
    report = (run / "report.md").read_text()
    metrics = load_json(run / "metrics.json")
    old = {k: v for k, v in metrics.items() if k != "schema_version"}  # as runs before the version was written
    (run / "metrics.json").write_text(json.dumps(old))
    (run / "report.md").unlink()
    rerender(run)  # what `xai report DIR` runs
    assert (run / "report.md").read_text() == report
    (run / "metrics.json").write_text(json.dumps({**metrics, "schema_version": 99}))
    with pytest.raises(UserError, match="schema version 99.*upgrade xai"):
        rerender(run)
    (run / "metrics.json").write_text(json.dumps({**metrics, "command": "os.system"}))
    unknown = run_xai("report", str(run), root=tmp_path)
    assert unknown.returncode == 2 and "not one of xai's" in unknown.stderr and "Traceback" not in unknown.stderr


def test_discrepancy_between_a_users_own_estimators_in_input_space(tmp_path: Path) -> None:
    from sklearn.svm import SVC

    data = xai.datasets.load("moons")
    train = data.split("train")
    x, y = train.x.numpy(), train.y.numpy()
    models = {"lr": LogisticRegression().fit(x, y), "svm": SVC(probability=True, random_state=0).fit(x, y)}
    result = xai.discrepancy(models, data, space="input", anchors=40, neighbours=3, realism_points=50,
                             model_dir=tmp_path / "models")
    m = result.metrics
    assert m["space"] == "input" and m["n_areas"] > 0 and m["vae"] is None
    assert m["border_check"]["inside_ok"] == m["border_check"]["inside"] > 0  # every saved border re-checked
    assert len(result.areas["t_start"]) == m["n_areas"] and list(result.areas["model_names"]) == ["lr", "svm"]
    assert m["figures"]["plane"] in result.figures and not (tmp_path / "models").exists()
    run = result.save(tmp_path / "run").parent
    assert len(json.loads((run / "intervals.json").read_text())["areas"]) == m["n_areas"]
    assert load_result(run).to_markdown() == (run / "report.md").read_text()
    with pytest.raises(UserError, match="compares models: choose at least two"):
        xai.discrepancy({"lr": models["lr"]}, data, space="input")
    with pytest.raises(UserError, match="space=pixels is not a space: choose one of input, latent"):
        xai.discrepancy(models, data, space="pixels")


CF_BUDGET = {"wachter": {"search_rounds": 2, "steps": 15}, "prototype": {"search_rounds": 2, "steps": 15},
             "latent_rl": {"fit": {"steps": 20, "batch_size": 32}}}


def test_counterfactuals_for_a_users_module_and_callable(digits, net, logreg, tmp_path: Path) -> None:
    store = tmp_path / "models"
    first = xai.counterfactual(net, digits, methods=["wachter", "latent_rl"], n_images=3, method_settings=CF_BUDGET,
                               model_dir=store, trainer=TRAINER)
    m = first.metrics
    assert m["classifier"]["source"] == "given" and m["settings"]["wachter"]["steps"] == 15
    saved = first.counterfactuals
    for method in ("wachter", "latent_rl"):
        valid = saved[f"{method}_valid"]
        assert m["methods"][method]["validity"] == pytest.approx(valid.mean())
        assert np.array_equal(saved[method][~valid], saved["originals"][~valid])
    assert not m["methods"]["latent_rl"]["actor_from_store"]
    # the actor learned against the user's module is keyed by its weights: found again, not retrained...
    again = xai.counterfactual(net, digits, methods=["latent_rl"], n_images=3, method_settings=CF_BUDGET,
                               model_dir=store, trainer=TRAINER)
    assert again.metrics["methods"]["latent_rl"]["actor_from_store"]
    # ...and other weights are another model
    changed = copy.deepcopy(net)
    with torch.no_grad():
        changed[3].bias += 0.01
    third = xai.counterfactual(changed, digits, methods=["latent_rl"], n_images=3, method_settings=CF_BUDGET,
                               model_dir=store, trainer=TRAINER)
    assert not third.metrics["methods"]["latent_rl"]["actor_from_store"]

    def probabilities(x: np.ndarray) -> np.ndarray:
        return logreg.predict_proba(x.reshape(len(x), -1))

    before = sorted(p.name for p in store.iterdir())
    plain = xai.counterfactual(probabilities, digits, methods=["wachter", "latent_rl"], n_images=2,
                               method_settings=CF_BUDGET, model_dir=store, trainer=TRAINER)
    assert "gradients" in plain.metrics["methods"]["wachter"]["skipped"]
    assert "validity" in plain.metrics["methods"]["latent_rl"]
    assert sorted(p.name for p in store.iterdir()) == before  # a callable has no identity: its actor is not kept
    fitted = xai.counterfactual({"lr": logreg}, digits, methods=["latent_rl"], n_images=2, method_settings=CF_BUDGET,
                                model_dir=store, trainer=TRAINER)  # a fitted estimator as it is: its actor is kept
    assert fitted.metrics["classifier"]["name"] == "lr" and "validity" in fitted.metrics["methods"]["latent_rl"]
    assert list(store.glob("latent_rl_lr-*"))
    run = plain.save(tmp_path / "run").parent
    assert load_result(run).to_markdown() == (run / "report.md").read_text()
    with pytest.raises(UserError, match="unknown counterfactual method dice; valid: latent_rl, prototype, wachter"):
        xai.counterfactual(net, digits, methods=["dice"], model_dir=store)
    with pytest.raises(UserError, match="method wachter has no setting step; its settings: .*steps"):
        xai.counterfactual(net, digits, method_settings={"wachter": {"step": 3}}, model_dir=store)
    with pytest.raises(UserError, match="generator has no setting latent; its settings: .*latent_dim"):
        xai.counterfactual(net, digits, generator={"latent": 3}, model_dir=store)


def test_the_true_class_can_be_explained(digits, logreg, tmp_path: Path) -> None:
    result = xai.explain({"lr": logreg}, digits, explainers=["occlusion"], n_images=2, target="true",
                         model_dir=tmp_path, **SMALL)
    assert result.metrics["target"] == "true"
    assert result.metrics["predictions"]["lr"]["target"] == digits.split("test").y[:2].tolist()
    with pytest.raises(UserError, match="explain.target=guess: choose one of predicted, true"):
        xai.explain({"lr": logreg}, digits, explainers=["occlusion"], target="guess", model_dir=tmp_path)


def test_same_config_same_seed_gives_identical_metrics(tmp_path: Path) -> None:
    """Two independent trainings (separate stores) of the default pair agree to the last digit."""
    a, b = (xai.train(["cnn", "svm_rbf"], "digits", model_dir=tmp_path / name, trainer=TRAINER) for name in "ab")

    def without_timings(metrics: dict) -> dict:
        return {**metrics, "models": {n: {k: v for k, v in m.items() if k != "train_time_s"}
                                      for n, m in metrics["models"].items()}}

    assert all(m["source"] == "trained now" for m in b.metrics["models"].values())
    assert without_timings(a.metrics) == without_timings(b.metrics)


def test_consistency_of_architectures_by_name(digits, net, tmp_path: Path) -> None:
    result = xai.consistency({"small": "small_cnn", "lr": "logreg"}, digits, perturbation="seed", copies=2,
                             explainers=["saliency"], n_per_class=3, model_dir=tmp_path, trainer=TRAINER)
    table = {row["architecture"]: row for row in result.metrics["table"]}
    assert table["small"]["explainer"] == "saliency" and table["small"]["alpha"] == 1
    assert table["lr"]["explainer"] == "kernel_shap"  # no gradients: the model-agnostic explainer steps in
    assert all(0.0 <= row["C"] <= 1.0 for row in table.values())
    copies = table["small"]["accuracy_by_copy"]
    assert set(copies) == {"base", "seed-1"} and len({p.name for p in tmp_path.iterdir() if p.is_dir()}) == 4
    run = result.save(tmp_path / "run").parent
    assert load_result(run).to_markdown() == (run / "report.md").read_text()
    with pytest.raises(UserError, match="retrains copies of an architecture.*\\(net\\)"):
        xai.consistency({"net": net}, digits, model_dir=tmp_path)
    with pytest.raises(UserError, match="consistency.perturbation=noise: choose one of seed, shuffle, dropout, all"):
        xai.consistency(["small_cnn"], digits, perturbation="noise", model_dir=tmp_path)


def test_the_training_set_is_classified_once_when_the_gan_is_trained(tmp_path: Path) -> None:
    """The GAN's fit and the analysis both need the classifier's probabilities on every training input: the
    fit takes the runner's copy (on MNIST a second pass cost a cnn about 9 s)."""
    moons = xai.datasets.load("moons")
    n_train = len(moons.split("train"))
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    whole_passes = []

    def probabilities(x: np.ndarray) -> np.ndarray:
        whole_passes.append(len(x) == n_train)
        return torch.softmax(module(torch.as_tensor(x, dtype=torch.float32)), 1).detach().numpy()

    xai.uncertainty({"box": probabilities}, moons, generator_settings={"fit.steps": 20}, n_per_point=5,
                    model_dir=tmp_path)
    assert sum(whole_passes) == 1


def test_uncertainty_of_a_named_model_and_of_a_users_module(tmp_path: Path) -> None:
    moons = xai.datasets.load("moons")
    quick = {"generator_settings": {"fit.steps": 100}, "n_per_point": 10, "model_dir": tmp_path / "models"}
    first = xai.uncertainty(None, moons, **quick)  # the classifier and the GAN that suit 2-D points
    assert first.metrics["classifier"]["name"] == "mlp" and first.metrics["generator"]["name"] == "mlp_gan_mlp"
    again = xai.uncertainty("mlp", moons, **quick)
    assert again.metrics["generator"]["from_store"] and again.metrics["evaluation"] == first.metrics["evaluation"]

    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    mine = xai.uncertainty({"mine": module}, moons, **quick)
    assert mine.metrics["classifier"]["source"] == "given" and mine.metrics["generator"]["name"] == "mlp_gan_mine"
    assert not mine.metrics["generator"]["from_store"]
    assert xai.uncertainty({"mine": module}, moons, **quick).metrics["generator"]["from_store"]  # keyed by its weights
    with torch.no_grad():
        module[0].bias += 0.1
    assert not xai.uncertainty({"mine": module}, moons, **quick).metrics["generator"]["from_store"]  # new weights

    run = tmp_path / "run"
    mine.save(run)
    assert load_result(run).to_markdown() == mine.to_markdown()
    assert {p.name for p in (run / "figures").iterdir()} == {"msp_scatter.png", "plane.png"}

    def probabilities(x: np.ndarray) -> np.ndarray:  # a black box: its GAN is learned, used, not kept
        return torch.softmax(module(torch.as_tensor(x, dtype=torch.float32)), 1).detach().numpy()

    xai.uncertainty({"box": probabilities}, moons, **quick)
    assert not list((tmp_path / "models").glob("mlp_gan_box-*"))
    train = moons.split("train")
    estimator = LogisticRegression().fit(train.x.numpy(), train.y.numpy())  # a fitted estimator: keyed by its bytes
    fitted = xai.uncertainty({"lr": estimator}, moons, **quick)
    assert fitted.metrics["classifier"]["source"] == "given" and list((tmp_path / "models").glob("mlp_gan_lr-*"))
    for bad, message in [({"generator": "beta_vae"}, "unknown generator beta_vae"),
                         ({"condition_class": "x"}, "use predicted or true"),
                         ({"explain_index": 10**6}, "out of range"),
                         ({"grid": 3}, "uncertainty has no setting grid")]:
        with pytest.raises(UserError, match=message):
            xai.uncertainty(None, moons, **{**quick, **bad})


def test_consistency_of_a_users_own_architecture(tmp_path: Path) -> None:
    from tests.models.nets import TinyNet

    digits = xai.datasets.load("digits")
    spec = xai.module_spec(TinyNet, digits, width=4, fit={"max_epochs": 1})
    assert spec.name == "TinyNet" and spec.config.model.module == {"_target_": "tests.models.nets.TinyNet", "width": 4}
    result = xai.consistency({"tiny": spec}, digits, perturbation="seed", copies=2, n_per_class=3,
                             explainers=["saliency"], model_dir=tmp_path, trainer=TRAINER)
    (row,) = result.metrics["table"]
    assert row["architecture"] == "tiny" and row["explainer"] == "saliency" and 0 <= row["C"] <= 1
    assert len(list(tmp_path.glob("tiny-*"))) == 2  # the copies, trained into the store
    with pytest.raises(UserError, match="needs model.module._target_: give your network with xai.module_spec"):
        xai.train(["module"], digits, model_dir=tmp_path)

    def local() -> None:
        class Net(TinyNet):
            pass
        xai.module_spec(Net, digits)

    with pytest.raises(UserError, match="define it at module level"):
        local()
