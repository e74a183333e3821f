from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from tests.conftest import (SHARED_DATA, compose_config, require_shared_mnist, write_idx, write_image_folder,
                            write_npz)
from xai_cli.data.corruptions import corrupt
from xai_cli.data.digits import DigitsDataModule
from xai_cli.data.idx import read_idx
from xai_cli.data.image_folder import ImageFolderDataModule
from xai_cli.data.mnist import CorruptedMNISTDataModule, FashionMNISTDataModule, MNISTDataModule
from xai_cli.data.moons import MoonsDataModule
from xai_cli.data.npz import NpzDataModule
from xai_cli.errors import UserError


def _dataset(name: str, *overrides: str):
    return instantiate(compose_config("train", [f"dataset={name}", *overrides]).dataset)


def test_digits_is_framed_like_mnist_and_split_exactly() -> None:
    dm = _dataset("digits")
    sizes = {s: len(dm.split(s)) for s in ("train", "val", "test")}
    assert sum(sizes.values()) == 1797 and sizes == {"train": 1257, "val": 180, "test": 360}
    x = dm.split("train").x
    assert x.shape[1:] == (1, 28, 28) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    # MNIST framing: a 20 px box centred in 28 px leaves a 4 px empty margin
    assert float(x[:, :, :4].abs().sum()) == 0.0 and float(x[:, :, :, -4:].abs().sum()) == 0.0
    # every class present in every split
    for s in ("train", "val", "test"):
        assert set(dm.split(s).y.tolist()) == set(range(10))


def test_splits_are_fixed_by_split_seed() -> None:
    a, b = DigitsDataModule(input_shape=(1, 28, 28), num_classes=10), DigitsDataModule(input_shape=(1, 28, 28), num_classes=10)
    c = DigitsDataModule(input_shape=(1, 28, 28), num_classes=10, split_seed=1)
    assert torch.equal(a.split("test").x, b.split("test").x)
    assert not torch.equal(a.split("test").x, c.split("test").x)


def test_training_order_follows_the_loader_seed() -> None:
    dm = DigitsDataModule(input_shape=(1, 28, 28), num_classes=10)
    first = lambda seed: (dm.set_loader_seed(seed), next(iter(dm.train_dataloader())))[1][1]  # noqa: E731
    assert torch.equal(first(3), first(3))
    assert not torch.equal(first(3), first(4))


def test_mnist_reads_the_shared_folder_in_place_without_writing() -> None:
    data_dir = require_shared_mnist()
    before = sorted(p.name for p in (data_dir / "MNIST" / "raw").iterdir())
    dm = MNISTDataModule(data_dir=str(data_dir), input_shape=(1, 28, 28), num_classes=10)
    assert [len(dm.split(s)) for s in ("train", "val", "test")] == [55000, 5000, 10000]
    assert dm.split("test").x.shape == (10000, 1, 28, 28)
    assert sorted(p.name for p in (data_dir / "MNIST" / "raw").iterdir()) == before
    # the official test file, in order: its first label is a 7
    assert int(dm.split("test").y[0]) == 7


def test_mnist_slice_and_val_holdout(mnist_slice_dir: Path) -> None:
    dm = MNISTDataModule(data_dir=str(mnist_slice_dir), input_shape=(1, 28, 28), num_classes=10, val_size=200)
    assert [len(dm.split(s)) for s in ("train", "val", "test")] == [1800, 200, 500]
    train_idx, val_idx = dm.split("train").extras["index"], dm.split("val").extras["index"]
    assert not set(train_idx) & set(val_idx) and len(set(train_idx) | set(val_idx)) == 2000


def test_missing_mnist_says_which_files_to_put_where(tmp_path: Path) -> None:
    dm = MNISTDataModule(data_dir=str(tmp_path), download=False, input_shape=(1, 28, 28), num_classes=10)
    with pytest.raises(UserError) as err:
        dm.setup()
    message = str(err.value)
    assert "train-images-idx3-ubyte.gz" in message and str(tmp_path / "MNIST" / "raw") in message
    assert "\n" not in message


def test_truncated_idx_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "x-idx3-ubyte.gz"
    write_idx(path, np.zeros((10, 28, 28), dtype=np.uint8))
    import gzip

    data = gzip.decompress(path.read_bytes())[:-100]
    path.write_bytes(gzip.compress(data))
    with pytest.raises(ValueError, match="truncated"):
        read_idx(path)


def test_fashion_mnist_layout_and_class_names(tmp_path: Path) -> None:
    archive = SHARED_DATA / "fashion_mnist_subset.npz"
    if not archive.is_file():
        pytest.skip("fashion subset not present")
    with np.load(archive) as f:
        raw = tmp_path / "FashionMNIST" / "raw"
        raw.mkdir(parents=True)
        write_idx(raw / "train-images-idx3-ubyte.gz", f["x_train"][:600])
        write_idx(raw / "train-labels-idx1-ubyte.gz", f["y_train"][:600])
        write_idx(raw / "t10k-images-idx3-ubyte.gz", f["x_test"][:100])
        write_idx(raw / "t10k-labels-idx1-ubyte.gz", f["y_test"][:100])
    dm = FashionMNISTDataModule(data_dir=str(tmp_path), input_shape=(1, 28, 28), num_classes=10, val_size=100)
    assert len(dm.split("train")) == 500 and dm.class_names[0] == "T-shirt/top" and dm.name == "fashion_mnist"


def test_fashion_mnist_subset_config_reads_the_shared_archive() -> None:
    if not (SHARED_DATA / "fashion_mnist_subset.npz").is_file():
        pytest.skip("fashion subset not present")
    dm = _dataset("fashion_mnist_subset", f"paths.data_dir={SHARED_DATA}")
    assert len(dm.split("test")) == 4443
    assert len(dm.split("train")) + len(dm.split("val")) == 1813
    assert dm.class_names[-1] == "ankle boot"


def test_corruption_is_fixed_per_index_and_recorded(mnist_slice_dir: Path) -> None:
    kwargs = dict(data_dir=str(mnist_slice_dir), input_shape=(1, 28, 28), num_classes=10, val_size=200)
    a, b = CorruptedMNISTDataModule(**kwargs), CorruptedMNISTDataModule(**kwargs)
    clean = MNISTDataModule(**kwargs)
    # a different split seed moves images between train and val, but image i keeps its corruption
    c = CorruptedMNISTDataModule(**{**kwargs, "split_seed": 5})
    test_a, test_b, test_clean = a.split("test"), b.split("test"), clean.split("test")
    assert torch.equal(test_a.x, test_b.x)
    kind, severity = test_a.extras["corruption"], test_a.extras["severity"]
    assert (kind > 0).sum() == 250  # exactly half of 500
    assert set(np.unique(severity[kind > 0])) <= {1, 2, 3, 4, 5} and (severity[kind == 0] == 0).all()
    untouched = torch.from_numpy(kind == 0)
    assert torch.equal(test_a.x[untouched], test_clean.x[untouched])
    assert (test_a.x[~untouched] - test_clean.x[~untouched]).abs().flatten(1).sum(1).min() > 0
    by_index = {int(i): x for i, x in zip(a.split("train").extras["index"], a.split("train").x)}
    for i, x in zip(c.split("train").extras["index"][:50], c.split("train").x[:50]):
        if int(i) in by_index:
            assert torch.equal(by_index[int(i)], x)


def test_corrupt_severity_orders_the_damage() -> None:
    images = np.zeros((2000, 1, 28, 28), dtype=np.float32)
    images[:, :, 10:18, 13:15] = 1.0
    out, kind, sev = corrupt(images, 0, 0, 1.0, [0.08, 0.12, 0.18, 0.26, 0.38], [0.5, 0.75, 1.0, 1.25, 1.5])
    change = np.abs(out - images).reshape(len(out), -1).mean(1)
    for k in (1, 2):
        means = [change[(kind == k) & (sev == s)].mean() for s in range(1, 6)]
        assert means == sorted(means), (k, means)


def test_npz_with_x_y_is_split_and_resized(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "mine.npz"
    np.savez(path, x=rng.integers(0, 255, (200, 32, 32, 3), dtype=np.uint8), y=np.repeat(np.arange(4), 50))
    dm = NpzDataModule(file=str(path), image_size=28, channels=1, input_shape=(1, 28, 28), num_classes=4)
    assert dm.split("train").x.shape[1:] == (1, 28, 28)
    assert sum(len(dm.split(s)) for s in ("train", "val", "test")) == 200


def test_npz_missing_file_is_a_user_error(tmp_path: Path) -> None:
    dm = NpzDataModule(file=str(tmp_path / "none.npz"), input_shape=(1, 28, 28), num_classes=2)
    with pytest.raises(UserError, match="none.npz"):
        dm.setup()


def test_image_folder_colour_to_grey(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog", "eel"):
        (tmp_path / cls).mkdir()
        for i in range(10):
            Image.fromarray(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    dm = ImageFolderDataModule(root=str(tmp_path), image_size=28, channels=1, input_shape=(1, 28, 28), num_classes=3)
    assert dm.class_names == ["cat", "dog", "eel"]
    assert sum(len(dm.split(s)) for s in ("train", "val", "test")) == 30
    assert dm.split("test").x.shape[1:] == (1, 28, 28)


def test_image_folder_takes_its_classes_from_its_folders(tmp_path: Path) -> None:
    import xai_cli as xai

    root = write_image_folder(tmp_path / "digits", classes=3, per_class=10, size=32)
    data = xai.datasets.load("image_folder", root=str(root), channels=3, image_size=32)
    assert (data.num_classes, data.class_names, data.input_shape) == (3, ["one", "two", "zero"], (3, 32, 32))
    assert xai.datasets.load("image_folder", root=str(root), num_classes=3).num_classes == 3  # a check, not a need
    renamed = xai.datasets.load("image_folder", root=str(root), class_names=["1", "2", "0"])
    assert renamed.class_names == ["1", "2", "0"]
    with pytest.raises(UserError, match=r"has 3 class folders but dataset.num_classes=4"):
        xai.datasets.load("image_folder", root=str(root), num_classes=4)
    with pytest.raises(UserError, match=r"dataset.class_names has 2 names for 3 class folders"):
        xai.datasets.load("image_folder", root=str(root), class_names=["a", "b"])
    (tmp_path / "one" / "cat").mkdir(parents=True)
    with pytest.raises(UserError, match=r"has 1 class folder; a classifier needs two or more"):
        xai.datasets.load("image_folder", root=str(tmp_path / "one"))
    with pytest.raises(UserError, match=r"^image folder not found: .*nowhere \(set dataset.root="):
        xai.datasets.load("image_folder", root=str(tmp_path / "nowhere"))


def test_npz_takes_its_classes_from_its_labels_or_its_names(tmp_path: Path) -> None:
    import xai_cli as xai

    named = xai.datasets.load("npz", file=str(write_npz(tmp_path / "named.npz", classes=3, per_class=10)))
    assert (named.num_classes, named.class_names) == (3, ["zero", "one", "two"])
    plain = write_npz(tmp_path / "plain.npz", classes=4, per_class=10, names=False)
    assert xai.datasets.load("npz", file=str(plain)).class_names == ["0", "1", "2", "3"]
    # more classes than the labels show (a class absent from this file) is allowed; fewer is refused
    assert xai.datasets.load("npz", file=str(plain), num_classes=5).class_names == ["0", "1", "2", "3", "4"]
    with pytest.raises(UserError, match=r"plain.npz has labels up to 3 but dataset.num_classes=3"):
        xai.datasets.load("npz", file=str(plain), num_classes=3)
    assert xai.datasets.load("npz", file=str(plain), class_names=list("abcd")).class_names == list("abcd")
    with pytest.raises(UserError, match=r"3 class names for dataset.num_classes=4"):
        xai.datasets.load("npz", file=str(plain), class_names=list("abc"), num_classes=4)
    with pytest.raises(UserError, match=r"plain.npz: labels must lie in 0..2 \(dataset.num_classes=3\), got 3"):
        xai.datasets.load("npz", file=str(plain), class_names=list("abc"))
    with pytest.raises(UserError, match=r"^dataset file not found: .*none.npz"):
        xai.datasets.load("npz", file=str(tmp_path / "none.npz"))


def test_npz_refuses_labels_that_are_not_class_indices_and_pixels_that_are_not_numbers(tmp_path: Path) -> None:
    import xai_cli as xai

    x = np.zeros((40, 8, 8), np.uint8)
    for name, y, message in (("float", np.arange(40) % 4 + 0.5, "labels must be class indices"),
                             ("onehot", np.eye(4)[np.arange(40) % 4], "160 labels for 40 inputs"),
                             ("negative", np.arange(40) % 4 - 1, "labels must be class indices 0..K-1, got -1"),
                             ("single", np.zeros(40), "the training labels hold a single class"),
                             ("nan", None, "x holds 1 NaN or infinite pixel values"),
                             ("text", np.array(["cat", "dog"] * 20), r"labels must be class indices 0..K-1 \(names")):
        pixels = x if y is not None else np.where(np.arange(40 * 64).reshape(40, 8, 8) == 7, np.nan, 0.5)
        np.savez(tmp_path / f"{name}.npz", x=pixels, y=np.arange(40) % 4 if y is None else y)
        with pytest.raises(UserError, match=message):
            xai.datasets.load("npz", file=str(tmp_path / f"{name}.npz"), num_classes=4)


def test_moons_are_2d_with_the_configured_noise() -> None:
    dm = MoonsDataModule(input_shape=(2,), num_classes=2, n_samples=1000)
    assert dm.split("train").x.shape[1:] == (2,)
    assert sum(len(dm.split(s)) for s in ("train", "val", "test")) == 1000


def test_a_users_files_are_known_to_the_store_by_their_content(tmp_path: Path, monkeypatch) -> None:
    """A rewritten npz must never be served a model trained on the old one; the same file elsewhere may."""
    import shutil

    import xai_cli as xai
    import xai_cli.utils.hashing as hashing

    cache = tmp_path / "cache"
    first = write_npz(tmp_path / "a" / "set.npz", classes=3, per_class=10)
    (tmp_path / "b").mkdir()
    moved = Path(shutil.copy2(first, tmp_path / "b" / "set.npz"))

    def identity(path: Path) -> dict:
        return xai.datasets.load("npz", file=str(path), cache_dir=str(cache)).store_identity()

    a = identity(first)
    assert "file" not in a and "cache_dir" not in a and len(a["content_sha256"]) == 64
    assert identity(moved) == a  # where the file lies is not what the models were trained on
    with np.load(first) as archive:
        arrays = dict(archive)
    arrays["y"] = arrays["y"][::-1].copy()  # the same images, other labels
    np.savez(first, **arrays)
    assert identity(first)["content_sha256"] != a["content_sha256"]
    # a warm run reads the hashes from the cache instead of the files
    monkeypatch.setattr(hashing, "file_sha256", lambda path: pytest.fail(f"{path} hashed again"))
    assert identity(moved) == a

    monkeypatch.undo()
    folder = write_image_folder(tmp_path / "folder", classes=3, per_class=10, size=16)
    (folder / "README.txt").write_text("not an image")
    before = xai.datasets.load("image_folder", root=str(folder)).store_identity()  # no cache_dir: this process only
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(folder / "one" / "0100.png")
    after = xai.datasets.load("image_folder", root=str(folder)).store_identity()
    assert after["content_sha256"] != before["content_sha256"] and "root" not in after


def test_an_image_that_cannot_be_decoded_is_named_by_the_check_and_good_ones_are_read_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A truncated PNG and a text file named like an image: the cheap check (run before a run directory
    exists) names the file; images seen whole are not decoded again on the next run, a rewritten one is."""
    import xai_cli as xai
    from xai_cli.data import image_folder
    from xai_cli.datasets import dataset_config
    from xai_cli.errors import UserError

    folder = write_image_folder(tmp_path / "folder", classes=2, per_class=10, size=16)
    broken = sorted((folder / "one").iterdir())[3]
    good = broken.read_bytes()
    broken.write_bytes(good[: len(good) // 2])

    def load():  # configured, not yet read (as the CLI's check before a run directory sees it)
        return instantiate(dataset_config("image_folder", root=str(folder), cache_dir=str(tmp_path / "cache")))

    with pytest.raises(UserError, match=rf"{broken.name} cannot be read as an image \(.*\): fix or remove it"):
        load().check()
    broken.write_bytes(b"not a png")
    with pytest.raises(UserError, match=rf"{broken.name} cannot be read as an image"):
        load().check()
    with pytest.raises(UserError, match=rf"{broken.name} cannot be read as an image"):
        xai.datasets.load("image_folder", root=str(folder))  # the API reads every image: the same line
    broken.write_bytes(good)
    load().check()
    decoded: list[Path] = []
    real = image_folder._decodes
    monkeypatch.setattr(image_folder, "_decodes", lambda path: decoded.append(path) or real(path))
    load().check()
    assert decoded == []  # all 20 known to decode, by size and mtime
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(broken)
    load().check()
    assert decoded == [broken]


def test_sixteen_bit_pngs_keep_their_grey_levels(tmp_path: Path) -> None:
    import xai_cli as xai

    ramp = np.tile(np.linspace(0, 65535, 16).astype(np.uint16), (16, 1))  # 16 grey levels, left to right
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(10):
            Image.fromarray(ramp).save(tmp_path / cls / f"{i}.png")
    data = xai.datasets.load("image_folder", root=str(tmp_path), image_size=16, test_size=0.2, val_size=0.2)
    row = data.split("train").x[0, 0, 8].numpy()
    assert np.allclose(row, np.linspace(0, 1, 16), atol=1e-4)  # not clipped to 0 and 1
    assert len(np.unique(row.round(3))) == 16


def test_bad_dataset_settings_and_folders_are_one_line(tmp_path: Path) -> None:
    import xai_cli as xai

    root = write_image_folder(tmp_path / "digits", classes=2, per_class=10, size=16)
    for settings, message in (({"image_size": 0}, "dataset.image_size must be a positive number of pixels, got 0"),
                              ({"channels": 2}, "dataset.channels must be 1 (grey) or 3 (colour), got 2"),
                              ({"batch_size": 0}, "dataset.batch_size must be at least 1, got 0"),
                              ({"test_size": 1.5}, "each in (0, 1), together below 1, got 1.5 and 0.1")):
        with pytest.raises(UserError, match=re.escape(message)):
            xai.datasets.load("image_folder", root=str(root), **settings)
    (root / "empty").mkdir()
    with pytest.raises(UserError, match=r"digits: Found no valid file for the classes empty"):
        xai.datasets.load("image_folder", root=str(root))
    for name, content in (("text.npz", "x,y\n1,2\n"), ("empty.npz", "")):
        (tmp_path / name).write_text(content)
        with pytest.raises(UserError, match=rf"^{name} is not an .npz archive \(write one with numpy.savez"):
            xai.datasets.load("npz", file=str(tmp_path / name))
    np.savez(tmp_path / "objects.npz", x=np.zeros((4, 2, 2)), y=np.array([0, "a", None, 1], dtype=object))
    with pytest.raises(UserError, match=r"objects.npz holds object arrays, which only pickle can read"):
        xai.datasets.load("npz", file=str(tmp_path / "objects.npz"))
