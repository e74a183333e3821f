"""The config tree as a whole: every registered option composes, and resolves, under every command that
offers its group; every experiment preset composes under the commands its header names."""

from __future__ import annotations

import re

import pytest
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from xai_cli.config import CONFIG_DIR, SUITED, compose, group_options, suited

COMMANDS = ["train", "explain", "discrepancy", "counterfactual", "consistency", "uncertainty"]
SET_COMMANDS = ["train", "explain", "discrepancy", "consistency"]  # commands over a set of classifiers
SINGLE_COMMANDS = ["counterfactual", "uncertainty"]  # commands over one classifier
CLASSIFIER_REQUIRED = {"file": ["path=net.pt"]}  # classifiers whose files leave values to the user


def required(classifiers: list[str], prefix: str = "classifiers") -> list[str]:
    """The overrides that give the chosen classifiers their required values."""
    return [f"{prefix}.{c}.{v}" if prefix == "classifiers" else f"{prefix}.{v}"
            for c in classifiers for v in CLASSIFIER_REQUIRED.get(c, [])]


def resolved(cfg: DictConfig) -> dict:
    """The config resolved, Hydra's own section aside: every interpolation must find its key."""
    OmegaConf.set_struct(cfg, False)
    cfg.pop("hydra", None)
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


@pytest.mark.parametrize("dataset", group_options("dataset"))
@pytest.mark.parametrize("command", COMMANDS)
def test_every_dataset_composes_with_every_command(command: str, dataset: str, user_data: dict) -> None:
    cfg = resolved(compose(command, [f"dataset={dataset}", *user_data.get(dataset, [])]))
    assert cfg["dataset"]["_target_"].startswith("xai_cli.data.")
    if dataset in user_data:  # the classes come from the data: three, named in the npz, by folder in the folder
        assert cfg["dataset"]["num_classes"] == 3
        expected = ["one", "two", "zero"] if dataset == "image_folder" else ["zero", "one", "two"]  # folders sort
        assert cfg["dataset"]["class_names"] == expected


@pytest.fixture(scope="module")
def every_classifier() -> dict:
    """Every classifier as the set commands see it (one composition for all of them)."""
    names = group_options("classifier")
    return resolved(compose("train", [f"classifiers=[{','.join(names)}]", *required(names)]))["classifiers"]


@pytest.mark.parametrize("command", SET_COMMANDS)
def test_every_classifier_composes_into_every_set_command(command: str, every_classifier: dict) -> None:
    names = group_options("classifier")
    cfg = resolved(compose(command, [f"classifiers=[{','.join(names)}]", *required(names)]))
    assert list(cfg["classifiers"]) == names  # the set holds each under its own key
    assert all({"model", "fit"} <= set(cfg["classifiers"][n]) for n in names)
    assert cfg["classifiers"] == every_classifier


@pytest.mark.parametrize("classifier", group_options("classifier"))
def test_every_classifier_composes_with_every_single_model_command(classifier: str, every_classifier: dict) -> None:
    for command in SINGLE_COMMANDS:
        cfg = resolved(compose(command, [f"classifier={classifier}", *required([classifier], "classifier")]))
        assert cfg["classifier"] == every_classifier[classifier]


@pytest.mark.parametrize("command", ["explain", "consistency"])
def test_every_explainer_composes_into_every_command_and_builds(command: str) -> None:
    names = group_options("explainer")
    cfg = compose(command, [f"explainers=[{','.join(names)}]"])
    assert list(cfg.explainers) == names
    for name in names:
        assert type(instantiate(cfg.explainers[name])).__module__.startswith("xai_cli.explainers."), name


@pytest.mark.parametrize("explainer", group_options("explainer"))
def test_every_explainer_can_be_the_model_agnostic_fallback(explainer: str) -> None:
    fallback = compose("consistency", [f"explainer@consistency.model_agnostic_explainer={explainer}"])
    assert resolved(fallback)["consistency"]["model_agnostic_explainer"]["_target_"].startswith("xai_cli.explainers.")


@pytest.mark.parametrize("generator", group_options("generator"))
def test_every_generator_composes_with_every_command_that_has_one(generator: str) -> None:
    # no generator reads another command's settings: any of them composes under any command with a generator
    for command in ("discrepancy", "counterfactual", "uncertainty"):
        cfg = resolved(compose(command, [f"generator={generator}"]))
        assert cfg["generator"]["model"]["_target_"].startswith("xai_cli.models.generators."), command


def _preset_commands(experiment: str) -> list[str]:
    text = (CONFIG_DIR / "experiment" / f"{experiment}.yaml").read_text()
    return sorted(set(re.findall(rf"xai (\w+)(?: -m)? experiment={experiment}\b", text)))


@pytest.mark.parametrize("experiment", group_options("experiment"))
def test_every_experiment_preset_composes_under_the_commands_it_names(experiment: str) -> None:
    commands = _preset_commands(experiment)
    assert commands and set(commands) <= set(COMMANDS), f"{experiment}.yaml names no `xai <command> experiment=...`"
    for command in commands:
        cfg = resolved(compose(command, [f"experiment={experiment}"]))
        assert cfg["seed"] == 0


@pytest.mark.parametrize("dataset, classifier, generator", [("moons", "mlp", "mlp_gan"),
                                                            ("digits", "cnn", "stylegan2_lite"),
                                                            ("mnist_corrupted", "cnn", "stylegan2_lite"),
                                                            ("npz", "cnn", "stylegan2_lite")])
def test_uncertainty_takes_the_models_that_suit_the_data(dataset: str, classifier: str, generator: str,
                                                         user_data: dict) -> None:
    assert suited("classifier", dataset) == classifier and suited("generator", dataset) == generator
    cfg = compose("uncertainty", [f"dataset={dataset}", *user_data.get(dataset, [])])
    target = resolved(compose("train", [f"classifiers=[{classifier}]"]))["classifiers"][classifier]["model"]["_target_"]
    assert cfg.classifier.model._target_ == target
    # and an explicit choice wins
    chosen = compose("uncertainty", [f"dataset={dataset}", *user_data.get(dataset, []), "generator=mlp_gan_images"])
    assert chosen.generator.hidden == 256


def test_every_suited_option_exists() -> None:
    for kind, choice in SUITED.items():
        for group, option in choice.items():
            assert option in group_options(group), (kind, group, option)


def test_large_images_get_a_generator_that_makes_them() -> None:
    from xai_cli.analysis.context import ModelSpec
    from xai_cli.analysis.uncertainty import check_generator
    from xai_cli.errors import UserError

    npz64 = ["dataset=npz", "dataset.file=x.npz", "dataset.num_classes=3", "dataset.image_size=64"]
    with pytest.raises(UserError, match="up to 32 px.*generator=mlp_gan_images"):
        check_generator(ModelSpec("stylegan2_lite", compose("uncertainty", npz64).generator))
    check_generator(ModelSpec("mlp_gan_images", compose("uncertainty", [*npz64, "generator=mlp_gan_images"]).generator))


@pytest.mark.parametrize("method", group_options("counterfactual_method"))
def test_every_counterfactual_method_composes_and_builds(method: str) -> None:
    cfg = compose("counterfactual", [f"methods=[{method}]"])
    assert list(cfg.methods) == [method]
    assert type(instantiate(cfg.methods[method], _recursive_=False)).__module__.startswith("xai_cli.counterfactuals.")


@pytest.mark.parametrize("space", group_options("space"))
def test_every_search_space_composes_and_builds(space: str) -> None:
    assert instantiate(compose("discrepancy", [f"space={space}"]).space).name == space
