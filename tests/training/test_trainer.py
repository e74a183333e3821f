from __future__ import annotations

from pathlib import Path

import torch
from hydra.utils import instantiate

from tests.conftest import compose_config
from xai_cli.training.fit import LightningFit
from xai_cli.training.store import ModelStore


def test_ddp_preset_trains_in_spawned_processes_and_returns_the_weights(tmp_path: Path) -> None:
    """The ddp preset on two CPU processes: the main process gets rank 0's trained weights back."""
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


def test_small_sets_get_enough_epochs() -> None:
    fit = LightningFit(optimizer=torch.optim.Adam, max_epochs=3, min_train_images=30000)
    assert fit.epochs_for(55000) == 3
    assert fit.epochs_for(1257) == 24
