from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CONFIG_DIR
from xai_cli.config_check import config_groups, preflight
from xai_cli.errors import UserError


def error_of(*args: str, command: str = "train") -> str:
    with pytest.raises(UserError) as err:
        preflight(command, list(args), CONFIG_DIR)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_valid_overrides_pass() -> None:
    preflight("train", ["dataset=mnist", "classifiers=[cnn,svm_rbf]", "seed=3", "trainer.max_epochs=2",
                        "classifiers.cnn.fit.max_epochs=1", "hydra/launcher=joblib", "--cfg", "job"], CONFIG_DIR)
    preflight("train", ["--multirun", "seed=1,2,3", "trainer.limit_train_batches=0.5"], CONFIG_DIR)


def test_unknown_group_option_names_the_valid_ones() -> None:
    message = error_of("dataset=nope")
    assert message.startswith("unknown dataset 'nope'") and "digits" in message and "mnist_corrupted" in message


def test_every_option_of_a_sweep_is_checked() -> None:
    assert error_of("-m", "dataset=digits,nope").startswith("unknown dataset 'nope'")
    assert error_of("-m", "classifiers=[cnn],[cnn,nope]").startswith("unknown classifiers 'nope'")


def test_unknown_classifier_in_the_list() -> None:
    message = error_of("classifiers=[cnn,nope]")
    assert "unknown classifiers 'nope'" in message and "svm_rbf" in message and "lenet" in message


def test_option_the_command_does_not_have() -> None:
    message = error_of("classifier=nope")
    assert message.startswith("unknown option 'classifier'") and "classifiers=" in message and "dataset=" in message


def test_unknown_key_lists_its_siblings() -> None:
    message = error_of("trainer.max_epoch=3")
    assert "unknown option 'trainer.max_epoch'" in message and "max_epochs" in message


@pytest.mark.parametrize("override, expected", [("seed=abc", "seed expects an integer, got 'abc'"),
                                                ("trainer.limit_train_batches=all", "expects a number"),
                                                ("classifiers.cnn.fit.max_epochs=1.5", "expects an integer"),
                                                ("seed=1,x", "seed expects an integer, got 'x'")])
def test_wrong_value_type(override: str, expected: str) -> None:
    assert expected in error_of("-m", override) if "," in override else expected in error_of(override)


def test_mandatory_value_missing(user_data: dict) -> None:
    assert error_of("dataset=npz") == "dataset.file must be set, e.g. dataset.file=<value>"
    preflight("train", ["dataset=npz", *user_data["npz"]], CONFIG_DIR)


def test_unparsable_override() -> None:
    assert "cannot parse override" in error_of("seed=[1,")


def test_existing_run_dir_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text("{}")
    assert "never overwritten" in error_of(f"hydra.run.dir={tmp_path}")


def test_an_existing_run_is_found_whatever_the_spelling_of_its_path(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XAI_ROOT", str(tmp_path))
    victim = tmp_path / "outputs" / "victim"
    victim.mkdir(parents=True)
    (victim / "metrics.json").write_text("{}")
    for spelling in (f"hydra.run.dir={tmp_path}/nothing/../outputs/victim",  # `..` through a missing folder
                     "hydra.run.dir=${paths.output_dir}/victim",            # an interpolation of our config
                     f"hydra.sweep.dir={victim}"):                           # a sweep into an earlier run
        message = error_of("-m", spelling) if "sweep" in spelling else error_of(spelling)
        assert message == f"{victim} already holds a run and earlier runs are never overwritten: choose another " \
                          f"{spelling.split('=')[0]}", spelling
    error_free = tmp_path / "outputs" / "fresh"
    preflight("train", [f"hydra.run.dir={error_free}"], CONFIG_DIR)  # a new directory is fine


def test_groups_are_discovered() -> None:
    groups = config_groups(CONFIG_DIR)
    assert {"dataset", "classifier", "classifiers", "trainer", "analysis", "paths", "experiment"} <= groups


@pytest.mark.parametrize("experiment", ["uncertainty_mnist_corrupted", "uncertainty_gpu"])
def test_the_uncertainty_presets_compose_into_their_settings(experiment: str) -> None:
    from tests.conftest import compose_config

    cfg = compose_config("uncertainty", [f"experiment={experiment}"])
    assert cfg.dataset._target_.endswith("CorruptedMNISTDataModule")
    assert cfg.generator.model.generator._target_.endswith("StyleGAN2Generator")
    # the latent size reaches the container, the generator and its mapping alike
    assert cfg.generator.model.latent_dim == cfg.generator.model.generator.latent_dim == cfg.generator.latent_dim
    assert cfg.generator.fit.steps >= 8000


def test_a_users_data_is_checked_before_a_run_directory(tmp_path: Path) -> None:
    """Labels and pixels that would train nonsense are one line before Hydra makes a run directory."""
    import numpy as np

    for name, x, y, message in (
            ("nan", np.where(np.arange(40 * 64).reshape(40, 8, 8) == 3, np.nan, 0.5), np.arange(40) % 4,
             "nan.npz: x holds 1 NaN or infinite pixel values"),
            ("float", np.zeros((40, 8, 8)), np.arange(40) % 4 + 0.5, "float.npz: y: labels must be class indices"),
            ("onehot", np.zeros((40, 8, 8)), np.eye(4)[np.arange(40) % 4], "onehot.npz: y: 160 labels for 40 inputs")):
        np.savez(tmp_path / f"{name}.npz", x=x, y=y)
        assert error_of("dataset=npz", f"dataset.file={tmp_path / name}.npz").startswith(message)
    np.savez(tmp_path / "fine.npz", x=np.zeros((40, 8, 8)), y=np.arange(40) % 4)
    preflight("train", ["dataset=npz", f"dataset.file={tmp_path / 'fine.npz'}"], CONFIG_DIR)


@pytest.mark.parametrize("command, override, expected", [
    ("train", "trainer.max_epochs=0", "trainer.max_epochs must be at least 1, got 0"),
    ("train", "trainer.max_epochs=-1", "trainer.max_epochs must be at least 1, got -1"),
    ("train", "classifiers.cnn.fit.max_epochs=0", "classifiers.cnn.fit.max_epochs must be at least 1, got 0"),
    ("train", "classifiers=[]", "no classifiers selected: e.g. 'classifiers=[cnn,svm_rbf]'"),
    ("train", "dataset.batch_size=0", "dataset.batch_size must be at least 1, got 0"),
    ("train", "dataset.test_size=1.2", "dataset.test_size and dataset.val_size are shares of the images"),
    ("explain", "explain.n_images=0", "explain.n_images must be at least 1, got 0"),
    ("discrepancy", "discrepancy.eps=0", "discrepancy.eps must be above 0, got 0"),
    ("consistency", "consistency.copies=1", "consistency.copies must be at least 2, got 1"),
    ("uncertainty", "generator.fit.steps=0", "generator.fit.steps must be at least 1, got 0"),
])
def test_settings_that_mean_nothing_are_refused(command: str, override: str, expected: str) -> None:
    assert error_of(override, command=command).startswith(expected)


def test_an_error_without_a_message_of_its_own_gives_its_cause() -> None:
    # Hydra wraps a config file's invalid key (YAML's `null:` is a None key) in a message-less exception
    from hydra.errors import ConfigCompositionException
    from omegaconf.errors import KeyValidationError

    from xai_cli.config_check import describe_config_error

    try:
        try:
            raise KeyValidationError("Incompatible key type 'NoneType'")
        except KeyValidationError as cause:
            raise ConfigCompositionException() from cause
    except ConfigCompositionException as exc:
        assert describe_config_error(exc, CONFIG_DIR) == "Incompatible key type 'NoneType'"
    assert describe_config_error(ConfigCompositionException(), CONFIG_DIR) == "ConfigCompositionException"
