from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf
from sklearn.linear_model import LogisticRegression

from tests.conftest import FAST, compose_config
from xai_cli.training.store import ModelStore, model_key


def _cfg(*overrides: str):
    return compose_config("train", [*FAST, *overrides])


def _get(store: ModelStore, cfg, name: str = "small_cnn", data=None):
    data = data or instantiate(cfg.dataset)
    return store.get(name, cfg.classifiers[name], data, cfg.dataset, cfg.trainer, cfg.seed), data


def test_miss_trains_then_hit_loads_the_same_model(tmp_path: Path) -> None:
    cfg = _cfg("classifiers=[small_cnn]")
    store = ModelStore(tmp_path)
    first, data = _get(store, cfg)
    second, _ = _get(store, cfg, data=data)
    assert first.trained_now and not second.trained_now
    x = data.split("test").x
    assert np.array_equal(first.model.predict_proba(x), second.model.predict_proba(x))
    entries = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert [p.name for p in entries] == [first.path.name]  # no temporary folders left behind


@pytest.mark.parametrize("damage", ["truncate", "flip", "meta"])
def test_corrupted_entry_is_detected_and_retrained(tmp_path: Path, damage: str, caplog) -> None:
    cfg = _cfg("classifiers=[small_cnn]")
    store = ModelStore(tmp_path)
    first, data = _get(store, cfg)
    artifact = first.path / "model.bin"
    if damage == "truncate":
        artifact.write_bytes(artifact.read_bytes()[:100])
    elif damage == "flip":
        raw = bytearray(artifact.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        artifact.write_bytes(bytes(raw))
    else:
        (first.path / "meta.json").write_text("{not json")
    with caplog.at_level("WARNING"):
        again, _ = _get(store, cfg, data=data)
    assert again.trained_now
    assert "corrupted" in caplog.text
    assert json.loads((again.path / "meta.json").read_text())["artifact"]["bytes"] == (again.path / "model.bin").stat().st_size


def test_sklearn_models_are_stored_too(tmp_path: Path) -> None:
    cfg = _cfg("classifiers=[svm_rbf]")
    store = ModelStore(tmp_path)
    first, data = _get(store, cfg, "svm_rbf")
    second, _ = _get(store, cfg, "svm_rbf", data=data)
    x = data.split("test").x
    assert not second.trained_now
    assert np.array_equal(first.model.predict_proba(x), second.model.predict_proba(x))


class _Boom:
    """A pickle that runs code when loaded: it touches a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


class Planted(LogisticRegression):
    """A type xai never writes (it could run anything once built)."""


def _plant(entry: Path, artifact: bytes) -> None:
    """Replace an entry's file and fix its checksum, as a writer with access to the store could."""
    (entry / "model.bin").write_bytes(artifact)
    meta = json.loads((entry / "meta.json").read_text())
    meta["artifact"].update(bytes=len(artifact), sha256=hashlib.sha256(artifact).hexdigest())
    (entry / "meta.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("planted", ["pickle", "foreign_type"])
def test_a_planted_scikit_learn_entry_is_never_run_but_retrained(tmp_path: Path, planted: str, caplog) -> None:
    import pickle

    import skops.io

    cfg = _cfg("classifiers=[logreg]")
    store = ModelStore(tmp_path / "store")
    first, data = _get(store, cfg, "logreg")
    marker = tmp_path / "ran"
    if planted == "pickle":
        _plant(first.path, pickle.dumps(_Boom(marker)))
    else:
        x, y = data.split("train").x.reshape(len(data.split("train")), -1).numpy(), data.split("train").y.numpy()
        skops.io.dump(Planted(max_iter=50).fit(x, y), tmp_path / "planted.skops")
        _plant(first.path, (tmp_path / "planted.skops").read_bytes())
    with caplog.at_level("WARNING"):
        again, _ = _get(store, cfg, "logreg", data=data)
    assert again.trained_now and not marker.exists()
    if planted == "foreign_type":
        assert "tests.training.test_store.Planted" in caplog.text  # named, not built
    test = data.split("test").x
    assert np.array_equal(again.model.predict_proba(test), first.model.predict_proba(test))


@pytest.mark.parametrize("meta_too", [False, True])
def test_an_entry_copied_under_another_models_key_is_not_served_as_it(tmp_path: Path, meta_too: bool, caplog) -> None:
    import shutil

    cfg = _cfg("classifiers=[logreg,svm_rbf]")
    store = ModelStore(tmp_path)
    logreg, data = _get(store, cfg, "logreg")
    svm, _ = _get(store, cfg, "svm_rbf", data=data)
    shutil.rmtree(svm.path)
    shutil.copytree(logreg.path, svm.path)  # the logreg entry, under the svm's key
    if meta_too:  # and its meta.json rewritten to claim the svm's key and config
        meta = json.loads((svm.path / "meta.json").read_text())
        meta.update(key=svm.key, classifier=json.loads(json.dumps(OmegaConf.to_container(cfg.classifiers.svm_rbf,
                                                                                            resolve=True))))
        (svm.path / "meta.json").write_text(json.dumps(meta))
    with caplog.at_level("WARNING"):
        again, _ = _get(store, cfg, "svm_rbf", data=data)
    assert again.trained_now and "corrupted" in caplog.text
    assert type(again.model.pipeline.steps[-1][1]).__name__ == "CalibratedClassifierCV"  # the Platt-scaled SVM


def test_key_covers_what_determines_a_model_and_nothing_else() -> None:
    base = _cfg()
    key = lambda c: model_key(c.classifiers.cnn, c.dataset, c.trainer, c.seed)  # noqa: E731
    assert key(base) == key(_cfg())
    for changed in ("seed=1", "classifiers.cnn.fit.max_epochs=7", "dataset.split_seed=1", "trainer.max_epochs=2",
                    "classifiers.cnn.model.dropout1=0.3"):
        assert key(_cfg(changed)) != key(base), changed
    for same in ("trainer.accelerator=cpu", "paths.data_dir=/elsewhere", "dataset.num_workers=0", "trainer=cpu"):
        assert key(_cfg(same)) == key(base), same


def test_a_fitter_that_changed_its_training_retires_its_old_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    from xai_cli.training.fit import LightningFit

    cfg = _cfg()
    before = model_key(cfg.classifiers.cnn, cfg.dataset, cfg.trainer, cfg.seed)
    monkeypatch.setattr(LightningFit, "store_revision", 1, raising=False)
    assert model_key(cfg.classifiers.cnn, cfg.dataset, cfg.trainer, cfg.seed) != before


def test_same_seed_same_weights_different_seed_different_weights(tmp_path: Path) -> None:
    a, data = _get(ModelStore(tmp_path / "a"), _cfg("classifiers=[small_cnn]"))
    b, _ = _get(ModelStore(tmp_path / "b"), _cfg("classifiers=[small_cnn]"), data=data)
    c, _ = _get(ModelStore(tmp_path / "c"), _cfg("classifiers=[small_cnn]", "seed=1"), data=data)
    x = data.split("test").x
    assert np.array_equal(a.model.predict_proba(x), b.model.predict_proba(x))
    assert not np.allclose(a.model.predict_proba(x), c.model.predict_proba(x))


def test_a_model_loaded_from_the_store_is_in_eval_mode_like_a_freshly_trained_one(tmp_path: Path) -> None:
    cfg = compose_config("train", ["classifiers=[mlp]", *FAST, f"paths.model_dir={tmp_path}"])
    data = instantiate(cfg.dataset)
    store = ModelStore(tmp_path)
    fresh = store.get("mlp", cfg.classifiers.mlp, data, cfg.dataset, cfg.trainer, cfg.seed)
    loaded = store.get("mlp", cfg.classifiers.mlp, data, cfg.dataset, cfg.trainer, cfg.seed)
    assert fresh.trained_now and not loaded.trained_now
    assert not fresh.model.training and not loaded.model.training


def test_an_entry_is_its_content_key_and_the_name_only_a_label(tmp_path: Path) -> None:
    """The same config asked for under two names is trained once (e.g. a GAN reached by two option names)."""
    cfg = _cfg("classifiers=[small_cnn]")
    store = ModelStore(tmp_path)
    first, data = _get(store, cfg)
    second = store.get("my_label", cfg.classifiers["small_cnn"], data, cfg.dataset, cfg.trainer, cfg.seed)
    assert first.trained_now and not second.trained_now and second.path == first.path
    assert json.loads((second.path / "meta.json").read_text())["name"] == "small_cnn"
    other = store.get("small_cnn", cfg.classifiers["small_cnn"], data, cfg.dataset, cfg.trainer, cfg.seed + 1)
    assert other.trained_now and other.path != first.path  # another key is another entry


def test_a_training_loss_that_turns_nan_stops_with_one_line_and_stores_nothing(tmp_path: Path, monkeypatch) -> None:
    from xai_cli.errors import UserError

    cfg = _cfg("classifiers=[small_cnn]")
    net_class = type(instantiate(cfg.classifiers.small_cnn.model))
    real_loss = net_class.training_loss
    calls = {"n": 0}

    def diverging(self, x, y):  # two good steps, then NaN, as a too-high learning rate gives
        calls["n"] += 1
        return real_loss(self, x, y) * (float("nan") if calls["n"] > 2 else 1.0)

    monkeypatch.setattr(net_class, "training_loss", diverging)
    with pytest.raises(UserError, match=r"^small_cnn: the training loss became nan at epoch 1, step 3; nothing was "
                                        r"stored"):
        _get(ModelStore(tmp_path), cfg)
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]  # no entry, no temporary folder


def test_a_store_whose_locks_cannot_be_taken_still_serves_what_it_holds(tmp_path: Path, monkeypatch) -> None:
    """A read-only store, or one whose lock files belong to another user: locks are needed only to train."""
    import xai_cli.training.store as store_module
    from xai_cli.errors import UserError

    cfg = _cfg("classifiers=[small_cnn]")
    first, data = _get(ModelStore(tmp_path), cfg)

    class Unlockable:
        def __init__(self, path: str) -> None:
            raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(store_module, "FileLock", Unlockable)
    again, _ = _get(ModelStore(tmp_path), cfg, data=data)
    assert not again.trained_now and again.path == first.path
    with pytest.raises(UserError, match=r"small_cnn is not in the model store .* and cannot be trained there "
                                        r"\(Permission denied\): set paths.model_dir"):  # training needs the lock
        _get(ModelStore(tmp_path), _cfg("classifiers=[small_cnn]", "seed=7"), data=data)


def test_a_lock_held_too_long_gives_up_in_one_line_naming_the_file(tmp_path: Path, caplog) -> None:
    """Another run (here another lock object on the same file: flock locks are per open file) holds the
    entry's lock: this one says it waits, then gives up after lock_timeout_s with the file to delete."""
    from filelock import FileLock

    from xai_cli.errors import UserError

    cfg = _cfg("classifiers=[logreg]")
    key = model_key(cfg.classifiers.logreg, cfg.dataset, cfg.trainer, cfg.seed)
    holder = FileLock(str(tmp_path / f"{key[:16]}.lock"))
    holder.acquire()
    try:
        with caplog.at_level("INFO"), pytest.raises(UserError, match=r"gave up after 0 min waiting for .*\.lock"):
            _get(ModelStore(tmp_path, lock_timeout_s=2), cfg, "logreg")
    finally:
        holder.release()
    assert "another run is training it; waiting for" in caplog.text
    assert not any(p.is_dir() for p in tmp_path.iterdir())  # nothing trained, nothing half-written


def test_an_entry_another_node_renamed_into_place_first_is_used(tmp_path: Path, monkeypatch, caplog) -> None:
    """Two nodes that did not see each other's lock train the same model: the second rename finds the
    entry there and loads it instead of failing."""
    import os
    import shutil

    import xai_cli.training.store as store_module

    real_replace = os.replace

    def another_node_first(src, dst) -> None:
        shutil.copytree(src, dst)  # the other node's identical entry lands first
        real_replace(src, dst)  # a directory onto a non-empty one: OSError

    monkeypatch.setattr(store_module.os, "replace", another_node_first)
    cfg = _cfg("classifiers=[logreg]")
    with caplog.at_level("INFO"):
        stored, _ = _get(ModelStore(tmp_path), cfg, "logreg")
    assert "another run stored it meanwhile" in caplog.text
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == [stored.path.name]  # no .tmp- left
    assert (stored.path / "meta.json").is_file()


def test_no_lock_file_is_left_once_its_entry_exists(tmp_path: Path) -> None:
    """Locks are needed only while an entry is missing: a store of many models does not fill with them."""
    store = ModelStore(tmp_path)
    for seed in (1, 2):
        _get(store, _cfg("classifiers=[logreg]", f"seed={seed}"), "logreg")
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2
    assert not list(tmp_path.glob("*.lock"))


def test_earlier_epochs_are_kept_beside_the_weights_unless_the_store_is_told_not_to(tmp_path: Path) -> None:
    cfg = _cfg("classifiers=[small_cnn]", "trainer.max_epochs=3")
    kept, data = _get(ModelStore(tmp_path / "kept"), cfg)
    assert [s["epoch"] for s in kept.meta["snapshots"]] == [1, 2]  # the third is model.bin itself
    assert sorted(p.name for p in kept.path.glob("epoch-*.pt")) == ["epoch-1.pt", "epoch-2.pt"]
    epoch_1 = ModelStore(tmp_path / "kept").snapshot(kept, cfg.classifiers.small_cnn, cfg.seed, 1)
    x = data.split("test").x
    assert not np.array_equal(epoch_1.predict_proba(x), kept.model.predict_proba(x))  # an earlier point
    bare, _ = _get(ModelStore(tmp_path / "bare", keep_epochs=False), cfg, data=data)
    assert bare.meta["snapshots"] == [] and not list(bare.path.glob("epoch-*.pt"))
    assert bare.key == kept.key  # the same model either way
    assert np.array_equal(bare.model.predict_proba(x), kept.model.predict_proba(x))
