"""Data-parallel settings: what they train (world size, precision in the store key) and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.conftest import compose_config
from xai_cli.config import CONFIG_DIR
from xai_cli.config_check import preflight
from xai_cli.errors import UserError
from xai_cli.training.parallel import check_parallel, cluster_plugins, effective_precision, world_size
from xai_cli.training.store import model_key

CPU = {"accelerator": "cpu"}


@pytest.mark.parametrize("settings, expected", [
    ({"devices": 1}, 1), ({"devices": 2}, 2), ({"devices": [0, 1]}, 2), ({"devices": "0,1"}, 2),
    ({"devices": "auto"}, 1), ({"devices": 2, "num_nodes": 3}, 6),
])
def test_world_size_counts_devices_times_nodes(settings: dict, expected: int) -> None:
    assert world_size({**CPU, **settings}) == expected


@pytest.mark.parametrize("asked, trained", [("16-mixed", "bf16-mixed"), ("16", "bf16-mixed"), ("32", "32-true"),
                                            ("bf16", "bf16-mixed"), ("32-true", "32-true")])
def test_precision_is_what_lightning_trains_in_on_a_cpu(asked: str, trained: str) -> None:
    assert effective_precision({**CPU, "precision": asked}) == trained


def test_store_key_holds_world_size_and_the_precision_really_used() -> None:
    cfg = compose_config("train", ["classifiers=[small_cnn]", "trainer=cpu"])
    model, data = cfg.classifiers.small_cnn, cfg.dataset

    def key(**trainer: object) -> str:
        return model_key(model, data, OmegaConf.merge(cfg.trainer, trainer), cfg.seed)

    assert key(devices=2, strategy="ddp_spawn") != key()  # half the optimiser steps per epoch: another model
    assert key(precision="16-mixed") == key(precision="bf16-mixed")  # Lightning trains bf16 for both on a CPU
    assert key(precision="32") == key()
    assert key(precision="bf16-mixed") != key()


@pytest.mark.parametrize("settings", [{"devices": 2, "strategy": "ddp"}, {"devices": 2, "strategy": "auto"},
                                      {"devices": [0, 1], "strategy": "ddp_find_unused_parameters_true"}])
def test_strategies_that_rerun_the_command_per_device_are_refused(settings: dict) -> None:
    with pytest.raises(UserError, match="re-runs the whole command once per device: use trainer=ddp"):
        check_parallel({**CPU, **settings}, environ={})


def test_spawning_and_single_device_settings_pass_and_get_their_own_environment() -> None:
    check_parallel({**CPU, "devices": 2, "strategy": "ddp_spawn"}, environ={})
    check_parallel({**CPU, "devices": 1, "strategy": "ddp"}, environ={})
    plugins = cluster_plugins({**CPU, "devices": 2, "strategy": "ddp_spawn"})
    assert [type(p).__name__ for p in plugins] == ["LightningEnvironment"]
    assert cluster_plugins({**CPU, "devices": 1}) == []


def test_a_slurm_job_of_several_tasks_is_refused() -> None:
    with pytest.raises(UserError, match="this Slurm job has 2 tasks"):
        check_parallel({**CPU, "devices": 1}, environ={"SLURM_JOB_ID": "7", "SLURM_NTASKS": "2"})
    check_parallel({**CPU, "devices": 1}, environ={"SLURM_NTASKS": "2"})  # outside a job: not ours to judge


@pytest.mark.parametrize("overrides, message", [
    (["trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp"], "trainer.strategy=ddp on 2 devices"),
    (["-m", "seed=1,2", "hydra/launcher=slurm_cpu", "hydra.launcher.tasks_per_node=2"],
     "hydra.launcher.tasks_per_node=2: each task would run the whole command"),
    (["hydra.launcher.nodes=1,4", "-m"], "hydra.launcher.nodes=4"),
])
def test_preflight_refuses_per_device_reruns_before_a_run_directory(tmp_path: Path, overrides: list[str],
                                                                    message: str) -> None:
    with pytest.raises(UserError, match=message):
        preflight("train", ["classifiers=[mlp]", f"paths.root_dir={tmp_path}", *overrides], CONFIG_DIR)
    assert not (tmp_path / "outputs").exists()


def test_the_cpu_bf16_preset_trains_in_bf16_under_its_own_store_key() -> None:
    bf16 = compose_config("train", ["classifiers=[cnn]", "trainer=cpu_bf16"])
    plain = compose_config("train", ["classifiers=[cnn]", "trainer=cpu"])
    assert bf16.trainer.accelerator == "cpu" and effective_precision(bf16.trainer) == "bf16-mixed"
    assert effective_precision(plain.trainer) == "32-true"
    keys = {model_key(c.classifiers.cnn, c.dataset, c.trainer, c.seed) for c in (bf16, plain)}
    assert len(keys) == 2
