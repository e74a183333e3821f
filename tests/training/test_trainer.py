from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from tests.conftest import compose_config
from xai_cli.training.fit import LightningFit
from xai_cli.training.store import ModelStore


SLURM_JOB = {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "train", "SLURM_JOB_ID": "4242", "SLURM_PROCID": "0",
             "SLURM_NODEID": "0", "SLURM_LOCALID": "0", "SLURM_NODELIST": "localhost"}


def test_ddp_preset_trains_in_spawned_processes_and_returns_the_weights(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The ddp preset on two CPU processes inside a (one-task) Slurm job: the workers take their ranks from
    the spawn, not from SLURM_PROCID (both rank 0: EADDRINUSE), the main process gets rank 0's trained
    weights back, and the entry records what the workers ran."""
    for name, value in SLURM_JOB.items():
        monkeypatch.setenv(name, value)
    cfg = compose_config("train", ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                                   "trainer.precision=32-true", "trainer.max_epochs=1", "trainer.limit_train_batches=4",
                                   "trainer.limit_val_batches=1", "classifiers=[small_cnn]"])
    data = instantiate(cfg.dataset)
    torch.manual_seed(cfg.seed)
    initial = instantiate(cfg.classifiers.small_cnn.model).state_dict()
    stored = ModelStore(tmp_path).get("small_cnn", cfg.classifiers.small_cnn, data, cfg.dataset, cfg.trainer, cfg.seed)
    trained = stored.model.state_dict()
    assert not torch.equal(initial["head.weight"], trained["head.weight"])
    test = data.split("test")
    assert (stored.model.predict_proba(test.x).argmax(1) == test.y.numpy()).mean() > 0.2  # chance is 0.1
    assert stored.meta["fit"]["epochs"] == 1 and stored.meta["fit"]["world_size"] == 2
    assert stored.meta["fit"]["steps"] == 4  # each worker runs its 4 batches of its half


def test_small_sets_get_enough_epochs() -> None:
    fit = LightningFit(optimizer=torch.optim.Adam, max_epochs=3, min_train_images=30000)
    assert fit.epochs_for(55000) == 3
    assert fit.epochs_for(1257) == 24


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_a_trainer_that_cannot_be_built_is_reported_by_its_cause() -> None:
    """`trainer=gpu` on a CPU node: the sweep summary and the error line name Lightning's reason, not Hydra's
    `Error in call to target` wrapper around it."""
    from hydra.errors import InstantiationException

    from xai_cli.app import describe_failure
    from xai_cli.training.trainer import build_trainer

    cfg = compose_config("train", ["trainer=gpu"])
    with pytest.raises(InstantiationException) as info:
        build_trainer(cfg.trainer, 1, "cnn")
    assert describe_failure(info.value) == "MisconfigurationException: No supported gpu backend found!"
