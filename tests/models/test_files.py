"""Models from files (`xai.load_model`, `classifier=file`): every format loads and predicts as the object saved,
the declared contract is held against the data in one line, and a file's identity follows its content."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import lightning.pytorch as L
import numpy as np
import pytest
import skops.io as sio
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

import xai_cli as xai
from tests.models.nets import LitTinyNet, TinyNet
from xai_cli.analysis.context import RunContext
from xai_cli.config import compose
from xai_cli.data.base import ArrayDataModule
from xai_cli.errors import UserError
from xai_cli.explainers.base import NotApplicable
from xai_cli.explainers.gradient import DeepLiftExplainer, GradCamExplainer, SaliencyExplainer
from xai_cli.models.adapters import fingerprint
from xai_cli.models.files import FileModel, load_model
from xai_cli.training.store import ModelStore


def _fit(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int = 2) -> torch.nn.Module:
    torch.manual_seed(0)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(epochs):
        for i in range(0, len(x), 64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[i : i + 64]), y[i : i + 64]).backward()
            opt.step()
    return net.eval()


@pytest.fixture(scope="module")
def digits() -> ArrayDataModule:
    return xai.datasets.load("digits")


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, digits) -> dict:
    """A TinyNet trained briefly on digits and saved in every format, with a fitted logistic regression."""
    folder = tmp_path_factory.mktemp("files")
    train = digits.split("train")
    net = _fit(TinyNet(), train.x, train.y)
    example = train.x[:2]
    with warnings.catch_warnings():  # torch deprecates TorchScript; users still have such files
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(net), folder / "net_script.pt")
        torch.jit.save(torch.jit.trace(net, example), folder / "net_trace.pth")
        torch.onnx.export(net, (example,), str(folder / "net.onnx"), input_names=["x"],
                          dynamic_axes={"x": {0: "n"}}, dynamo=False)
    torch.export.save(torch.export.export(net, (example,), dynamic_shapes={"x": {0: torch.export.Dim("n", min=1)}}),
                      folder / "net.pt2")
    torch.save(net.state_dict(), folder / "net_weights.pt")
    lit = LitTinyNet(width=8)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=3, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(lit, digits.train_dataloader())
    trainer.save_checkpoint(folder / "lit.ckpt")
    flat = train.x.reshape(len(train.x), -1).numpy()
    logreg = LogisticRegression(max_iter=300).fit(flat, train.y.numpy())
    sio.dump(logreg, folder / "logreg.skops")
    with open(folder / "logreg.pkl", "wb") as f:
        pickle.dump(logreg, f)
    # a model holding a type skops does not trust by default (the boosted trees' predictors)
    sio.dump(HistGradientBoostingClassifier(max_iter=3, random_state=0).fit(flat, train.y.numpy()),
             folder / "custom.skops")
    return {"dir": folder, "net": net, "lit": lit.eval(), "logreg": logreg, "x": digits.split("test").x[:40]}


@pytest.mark.parametrize("file, kwargs, fmt", [
    ("net_script.pt", {}, "torchscript"),
    ("net_trace.pth", {}, "torchscript"),
    ("net.pt2", {}, "exported"),
    ("net_weights.pt", {"network": TinyNet}, "state_dict"),
    ("net_weights.pt", {"network": "tests.models.nets.TinyNet"}, "state_dict"),
    ("net_weights.pt", {"network": TinyNet(width=8)}, "state_dict"),
    ("net.onnx", {}, "onnx"),
])
def test_every_network_format_predicts_as_the_network_saved(saved: dict, file: str, kwargs: dict, fmt: str) -> None:
    model = load_model(saved["dir"] / file, **kwargs)
    x = saved["x"]
    with torch.no_grad():
        expected = torch.softmax(saved["net"](x), -1).numpy()
    assert model.format == fmt
    assert np.abs(model.predict_proba(x) - expected).max() < 1e-5
    assert model.num_parameters() == sum(p.numel() for p in saved["net"].parameters())


def test_a_lightning_checkpoint_is_rebuilt_on_its_class(saved: dict) -> None:
    model = load_model(saved["dir"] / "lit.ckpt", network="tests.models.nets.LitTinyNet")
    x = saved["x"]
    with torch.no_grad():
        expected = torch.softmax(saved["lit"](x), -1).numpy()
    assert model.format == "lightning" and np.abs(model.predict_proba(x) - expected).max() < 1e-6
    with pytest.raises(UserError, match="give its LightningModule class"):
        load_model(saved["dir"] / "lit.ckpt")
    with pytest.raises(UserError, match="is not a LightningModule class"):
        load_model(saved["dir"] / "lit.ckpt", network=TinyNet)


def test_scikit_learn_models_load_through_skops_and_pickles_only_when_trusted(saved: dict) -> None:
    x = saved["x"]
    expected = saved["logreg"].predict_proba(x.reshape(len(x), -1).numpy())
    assert np.abs(load_model(saved["dir"] / "logreg.skops").predict_proba(x) - expected).max() == 0
    with pytest.raises(UserError, match="is a pickle: loading it runs whatever code it holds"):
        load_model(saved["dir"] / "logreg.pkl")
    assert np.abs(load_model(saved["dir"] / "logreg.pkl", trust=True).predict_proba(x) - expected).max() == 0


def test_a_skops_file_with_an_untrusted_type_is_refused_by_name_until_that_type_is_trusted(saved: dict) -> None:
    file = saved["dir"] / "custom.skops"
    untrusted = sio.get_untrusted_types(file=file)
    assert untrusted  # ...TreePredictor
    with pytest.raises(UserError) as refused:
        load_model(file)
    message = str(refused.value)
    assert "\n" not in message and all(t in message for t in untrusted) and "trust=[" in message
    model = load_model(file, trust=list(untrusted))
    assert model.predict_proba(saved["x"]).shape == (40, 10)


def test_a_file_model_s_identity_is_its_content(saved: dict, tmp_path: Path) -> None:
    copy = tmp_path / "copy.pt"
    copy.write_bytes((saved["dir"] / "net_script.pt").read_bytes())
    first = load_model(copy)
    assert fingerprint(first) == first.identity == load_model(saved["dir"] / "net_script.pt").identity  # not the path
    assert load_model(copy, mean=0.5, std=0.5).identity != first.identity  # what it computes changed
    net = TinyNet()
    torch.jit.save(torch.jit.script(net), copy)  # the file changed: a new identity
    assert load_model(copy).identity != first.identity


def test_normalisation_is_applied_inside_so_inputs_stay_pixels(saved: dict) -> None:
    model = load_model(saved["dir"] / "net_script.pt", mean=[0.1307], std=[0.3081])
    x = saved["x"]
    with torch.no_grad():
        expected = torch.softmax(saved["net"]((x - 0.1307) / 0.3081), -1).numpy()
    assert np.abs(model.predict_proba(x) - expected).max() < 1e-5


@pytest.mark.parametrize("declared, message", [
    ({"channels": 3}, "net.pt2 takes 3-channel images, the dataset has 1"),
    ({"image_size": 32}, "net.pt2 takes 32x32 images, the dataset has 28x28"),
    ({"num_classes": 1000}, "net.pt2 outputs 1000 classes, dataset has 10"),
    ({"class_names": list("abcdefghij")}, None),  # the digits set's classes are numbered: nothing to compare
])
def test_the_declared_contract_is_held_against_the_data_in_one_line(saved: dict, digits, declared: dict,
                                                                    message: str | None, tmp_path: Path) -> None:
    model = load_model(saved["dir"] / "net.pt2", **declared)
    ctx = RunContext(digits, ModelStore(tmp_path), compose("train").trainer)
    if message is None:
        ctx.check("file", model)
        return
    with pytest.raises(UserError) as refused:
        ctx.check("file", model)
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


def test_class_names_in_another_order_are_refused() -> None:
    from xai_cli.models.files import InputContract

    contract = InputContract.of(class_names=["cat", "dog"])
    contract.check("net.pt", (3, 32, 32), 2, ["cat", "dog"])
    with pytest.raises(UserError, match=r"net.pt's classes \(cat, dog\) are not the dataset's \(dog, cat\)"):
        contract.check("net.pt", (3, 32, 32), 2, ["dog", "cat"])


def test_an_onnx_graph_declares_its_own_input_size(saved: dict, digits) -> None:
    model = load_model(saved["dir"] / "net.onnx")
    assert model.contract.channels == 1 and model.contract.image_size == (28, 28)
    with pytest.raises(UserError, match="net.onnx takes 28x28 inputs, not 32x32 as declared"):
        load_model(saved["dir"] / "net.onnx", image_size=32)


@pytest.mark.parametrize("file, kwargs, message", [
    ("net_weights.pt", {}, "holds weights only: give the network"),
    ("net_weights.pt", {"network": TinyNet(width=4)}, "weights do not fit"),
    ("missing.pt", {}, "does not exist"),
    ("net.onnx", {"format": "tensorflow"}, "unknown model format 'tensorflow'; valid: auto, torchscript"),
    ("net.onnx", {"format": "skops"}, "is not a skops file"),
])
def test_a_file_that_cannot_be_what_is_asked_is_one_line(saved: dict, file: str, kwargs: dict, message: str) -> None:
    with pytest.raises(UserError) as refused:
        load_model(saved["dir"] / file, **kwargs)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_compiled_networks_skip_the_methods_that_hook_into_layers_with_the_reason(saved: dict) -> None:
    for file in ("net_script.pt", "net.pt2"):
        model = load_model(saved["dir"] / file)
        SaliencyExplainer().check(model)  # gradients flow through compiled graphs
        for explainer in (DeepLiftExplainer(), GradCamExplainer()):
            with pytest.raises(NotApplicable, match="load its state dict into its class"):
                explainer.check(model)
    DeepLiftExplainer().check(load_model(saved["dir"] / "net_weights.pt", network=TinyNet))
    with pytest.raises(NotApplicable, match="needs gradients"):
        SaliencyExplainer().check(load_model(saved["dir"] / "net.onnx"))


def test_a_file_network_s_random_twin_has_new_weights_not_the_file_s(saved: dict) -> None:
    for file in ("net_script.pt", "net_weights.pt"):
        model = load_model(saved["dir"] / file, network=TinyNet)
        twin = model.random_copy(seed=1)
        assert twin is not None and isinstance(twin, FileModel)
        before = torch.cat([p.flatten() for p in model.parameters()])
        after = torch.cat([p.flatten() for p in twin.parameters()])
        assert before.shape == after.shape and not torch.allclose(before, after)
        assert (twin.predict_proba(saved["x"]).argmax(1) == model.predict_proba(saved["x"]).argmax(1)).mean() < 0.5


def test_explanations_of_a_file_network_are_those_of_the_network_itself(saved: dict, digits, tmp_path: Path) -> None:
    """The same weights give the same attributions, whichever way they arrive."""
    models = {"module": saved["net"], "script": load_model(saved["dir"] / "net_script.pt"),
              "weights": load_model(saved["dir"] / "net_weights.pt", network=TinyNet),
              "onnx": load_model(saved["dir"] / "net.onnx")}
    result = xai.explain(models, digits, explainers=["saliency", "integrated_gradients", "gradient_shap", "deeplift",
                                                      "occlusion"],
                         n_images=4, model_dir=tmp_path, stability={"n_images": 1, "n_samples": 2},
                         randomization={"n_images": 2})
    a = result.attributions
    for method in ("saliency", "integrated_gradients", "gradient_shap"):
        for other in ("script", "weights"):
            assert np.abs(a[f"{other}/{method}"] - a[f"module/{method}"]).max() < 1e-4, (method, other)
    assert np.abs(a["onnx/occlusion"] - a["module/occlusion"]).max() < 1e-4
    e = result.metrics["explainers"]
    assert "hooks into the network's layers" in e["deeplift"]["script"]["skipped"]
    assert "needs gradients" in e["integrated_gradients"]["onnx"]["skipped"]
    # the sanity check randomises the architecture's weights (a reloaded file would score 1.0)
    assert e["saliency"]["script"]["randomization_similarity"] < 0.6
    described = result.metrics["models"]["script"]
    assert described["format"] == "torchscript" and len(described["sha256"]) == 64
    assert "net_script.pt (torchscript)" in result.to_markdown()  # the report names the file


def test_a_counterfactual_actor_learned_against_a_file_model_is_stored_by_its_identity(saved: dict, digits,
                                                                                     tmp_path: Path) -> None:
    budget = {"latent_rl": {"fit": {"steps": 10, "batch_size": 16}}}
    vae = {"fit.max_epochs": 1, "fit.min_train_images": 0}
    trainer = {"max_epochs": 1, "limit_train_batches": 2, "limit_val_batches": 1}
    model = load_model(saved["dir"] / "net_script.pt")
    run = lambda m: xai.counterfactual({"net": m}, digits, methods=["latent_rl"], n_images=2,  # noqa: E731
                                       method_settings=budget, generator=vae, trainer=trainer, model_dir=tmp_path)
    first = run(model)
    actors = sorted(p.name for p in tmp_path.glob("latent_rl_*"))
    assert len(actors) == 1 and first.metrics["classifier"]["source"] == "given"
    run(load_model(saved["dir"] / "net_script.pt"))  # the same file: the same actor
    assert sorted(p.name for p in tmp_path.glob("latent_rl_*")) == actors
    run(load_model(saved["dir"] / "net_script.pt", mean=0.5, std=0.5))  # another model: another actor
    assert len(list(tmp_path.glob("latent_rl_*"))) == 2


def test_uncertainty_trains_its_gan_against_a_file_model_once(tmp_path: Path) -> None:
    moons = xai.datasets.load("moons")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(net), tmp_path / "moons.pt")
    quick = {"generator_settings": {"fit.steps": 100}, "n_per_point": 10, "model_dir": tmp_path / "models"}
    first = xai.uncertainty({"net": load_model(tmp_path / "moons.pt")}, moons, **quick)
    assert not first.metrics["generator"]["from_store"]
    again = xai.uncertainty({"net": load_model(tmp_path / "moons.pt")}, moons, **quick)  # the file's identity
    assert again.metrics["generator"]["from_store"] and again.metrics["evaluation"] == first.metrics["evaluation"]
    with pytest.raises(UserError, match=r"moons.pt\) takes images, the dataset has inputs of shape \(2,\)"):
        xai.uncertainty({"net": load_model(tmp_path / "moons.pt", channels=1)}, moons, **quick)
