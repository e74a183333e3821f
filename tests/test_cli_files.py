"""`classifier=file` end to end through the real executable: models from files analysed as they are, and
files that do not fit the data refused in one line before any run directory exists."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
import torch
from sklearn.linear_model import LogisticRegression

import xai_cli as xai
from tests.conftest import FAST, load_json, only_run_dir, run_dirs, run_xai
from tests.models.nets import TinyNet

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A TinyNet trained briefly on digits as TorchScript and as ONNX, and a logistic regression in skops."""
    folder = tmp_path_factory.mktemp("user_models")
    train = xai.datasets.load("digits").split("train")
    torch.manual_seed(0)
    net = TinyNet()
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for i in range(0, len(train.x), 64):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(train.x[i : i + 64]), train.y[i : i + 64]).backward()
        opt.step()
    net.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(net), folder / "net.pt")
        torch.onnx.export(net, (train.x[:2],), str(folder / "net.onnx"), input_names=["x"],
                          dynamic_axes={"x": {0: "n"}}, dynamo=False)
    sio.dump(LogisticRegression(max_iter=200).fit(train.x.reshape(len(train.x), -1).numpy(), train.y.numpy()),
             folder / "logreg.skops")
    return {"net": folder / "net.pt", "onnx": folder / "net.onnx", "skops": folder / "logreg.skops"}


def test_explain_takes_several_files_each_under_its_own_name(tmp_path: Path, files: dict[str, Path]) -> None:
    result = run_xai("explain", "classifiers=[file]", f"classifiers.file.path={files['net']}",
                     "+classifier@classifiers.lr=file", f"classifiers.lr.path={files['skops']}",
                     "+classifier@classifiers.graph=file", f"classifiers.graph.path={files['onnx']}",
                     "explainers=[saliency,deeplift,occlusion]", "explain.n_images=2", "explain.stability.n_images=1",
                     "explain.stability.n_samples=2", root=tmp_path)
    assert result.returncode == 0, result.stderr
    run = only_run_dir(tmp_path, "explain")
    m = load_json(run / "metrics.json")
    assert {name: (v["source"], v["format"]) for name, v in m["models"].items()} == {
        "file": ("file", "torchscript"), "lr": ("file", "skops"), "graph": ("file", "onnx")}
    e = m["explainers"]
    assert "deletion_auc" in e["saliency"]["file"] and "TorchScript" in e["deeplift"]["file"]["skipped"]
    assert "gradients" in e["saliency"]["lr"]["skipped"] and "gradients" in e["saliency"]["graph"]["skipped"]
    assert all("deletion_auc" in e["occlusion"][name] for name in ("file", "lr", "graph"))
    # the same network through TorchScript and ONNX: the same occlusion maps
    saved = np.load(run / "attributions.npz")
    assert np.abs(saved["file/occlusion"] - saved["graph/occlusion"]).max() < 1e-4
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())  # nothing trained


@pytest.mark.parametrize("command, overrides, message", [
    ("explain", ["classifiers.file.num_classes=5"], "error: net.pt outputs 5 classes, dataset has 10"),
    ("explain", ["classifiers.file.channels=3"], "error: net.pt takes 3-channel images, the dataset has 1"),
    ("explain", ["dataset.image_size=32", "classifiers.file.image_size=28"],
     "error: net.pt takes 28x28 images, the dataset has 32x32"),
    ("consistency", [], "error: consistency retrains copies of each architecture, and file is a fixed model"),
])
def test_a_file_that_does_not_fit_is_refused_before_any_run_directory(tmp_path: Path, files: dict[str, Path],
                                                                      command: str, overrides: list[str],
                                                                      message: str) -> None:
    result = run_xai(command, "classifiers=[file]", f"classifiers.file.path={files['net']}", *overrides, root=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(message) and "Traceback" not in result.stderr, result.stderr
    assert run_dirs(tmp_path, command) == []


def test_counterfactual_and_train_take_a_file_model(tmp_path: Path, files: dict[str, Path]) -> None:
    result = run_xai("counterfactual", "classifier=file", f"classifier.path={files['net']}", *FAST,
                     "generator.fit.max_epochs=1", "generator.fit.min_train_images=0", "counterfactual.n_images=2",
                     "methods=[wachter]", "methods.wachter.search_rounds=2", "methods.wachter.steps=15", root=tmp_path)
    assert result.returncode == 0, result.stderr
    m = load_json(only_run_dir(tmp_path, "counterfactual") / "metrics.json")
    assert m["classifier"]["format"] == "torchscript" and "validity" in m["methods"]["wachter"]
    result = run_xai("train", "classifiers=[file]", f"classifiers.file.path={files['onnx']}", root=tmp_path)
    assert result.returncode == 0, result.stderr
    t = load_json(only_run_dir(tmp_path, "train") / "metrics.json")["models"]["file"]
    assert t["source"] == "file" and t["train_time_s"] is None and t["accuracy"]["test"] > 0.5


def test_a_colour_image_folder_is_explained_with_its_class_names(tmp_path: Path) -> None:
    """Your own data from the command line: the folder names are the classes, nothing else to declare."""
    from tests.conftest import DIGIT_NAMES, write_image_folder

    write_image_folder(tmp_path / "pets", classes=3, per_class=30, size=32)
    result = run_xai("explain", "dataset=image_folder", "dataset.root=pets", "dataset.channels=3",
                     "dataset.image_size=32", "classifiers=[small_cnn]", "explainers=[grad_cam,occlusion]",
                     "explain.n_images=2", "explain.stability.n_images=1", "explain.stability.n_samples=2", *FAST,
                     root=tmp_path)
    assert result.returncode == 0, result.stderr
    m = load_json(only_run_dir(tmp_path, "explain") / "metrics.json")
    assert m["dataset"]["class_names"] == sorted(DIGIT_NAMES[:3]) and m["dataset"]["input_shape"] == [3, 32, 32]
    assert all("deletion_auc" in m["explainers"][e]["small_cnn"] for e in ("grad_cam", "occlusion"))


@pytest.mark.parametrize("command, message, detail", [
    ("counterfactual", "error: beta_vae generates images up to 64 px, these are 96x96: set dataset.image_size=64", ""),
    ("uncertainty", "error: stylegan2_lite generates images up to 64 px, these are 96x96: set dataset.image_size=64",
     ""),
    ("explain", "error: dataset.class_names has 2 names for 3 class folders", ""),
    ("train", "error: ", "cannot be read as an image (image file is truncated"),  # the line names the file first
])
def test_what_the_data_or_a_generator_cannot_meet_is_refused_before_a_run_directory(tmp_path: Path, command: str,
                                                                       message: str, detail: str) -> None:
    from tests.conftest import write_image_folder

    write_image_folder(tmp_path / "pets", classes=3, per_class=4, size=40)
    extra = {"explain": ["dataset.class_names=[a,b]"], "train": []}.get(command, ["dataset.image_size=96"])
    if command == "train":  # a truncated image
        image = sorted((tmp_path / "pets").glob("*/*.png"))[5]
        image.write_bytes(image.read_bytes()[:200])
    result = run_xai(command, "dataset=image_folder", "dataset.root=pets", "dataset.channels=3", *extra, root=tmp_path)
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 2 and last.startswith(message) and detail in last, result.stderr
    assert not run_dirs(tmp_path, command)
