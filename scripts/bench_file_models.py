"""Models from files, measured: the issue's two figures, printed.

    python scripts/bench_file_models.py [model_dir]

1. The same weights, two ways: xai's `cnn` (trained on digits into the store) explained by name, and the same
   network saved as TorchScript and as a state dict and loaded with `xai.load_model`. Prints, per method, the
   largest absolute difference between their attributions (0 up to float rounding means a file model is
   explained exactly as xai's own).
2. Time per image of every method on 64-px RGB images (digits at dataset.channels=3, image_size=64), on xai's
   cnn architecture loaded from a state dict (so every method applies).
"""

from __future__ import annotations

import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import xai_cli as xai
from xai_cli.models.classifiers.cnn import CNN

TRAINER = {"max_epochs": 1, "limit_train_batches": 10, "limit_val_batches": 1}


def same_weights(model_dir: Path, folder: Path) -> None:
    data = xai.datasets.load("digits")
    trained = xai.train(["cnn"], data, model_dir=model_dir, splits=["test"])
    net = trained.models["cnn"].cpu().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # traced: xai's classes carry Python helpers (a device property) that torch.jit.script rejects
        torch.jit.save(torch.jit.trace(net, data.split("test").x[:2]), folder / "cnn.pt")
    torch.save(net.state_dict(), folder / "cnn_weights.pt")
    files = {"torchscript": xai.load_model(folder / "cnn.pt"),
             "state_dict": xai.load_model(folder / "cnn_weights.pt", network=CNN(input_shape=(1, 28, 28), num_classes=10))}
    start = time.perf_counter()
    result = xai.explain({"xai": "cnn", **files}, data, n_images=16, model_dir=model_dir)
    a, e = result.attributions, result.metrics["explainers"]
    print(f"1. xai's cnn vs the same weights from a file, 16 digits test images ({time.perf_counter() - start:.0f} s)")
    print(f"   {'method':22s} {'torchscript':>14s} {'state dict':>14s}   (max |attribution difference|; map scale)")
    for method in e:
        scale = float(np.abs(a[f"xai/{method}"]).max())
        cells = []
        for kind in files:
            key = f"{kind}/{method}"
            cells.append("skipped" if key not in a else f"{np.abs(a[key] - a[f'xai/{method}']).max():.2e}")
        print(f"   {method:22s} {cells[0]:>14s} {cells[1]:>14s}   {scale:.3g}")


def rgb_times(model_dir: Path, folder: Path) -> None:
    data = xai.datasets.load("digits", channels=3, image_size=64)
    spec = xai.model_spec("cnn", data)
    trained = xai.train({"cnn": spec}, data, model_dir=model_dir, trainer=TRAINER, splits=["test"])
    net = trained.models["cnn"].cpu().eval()
    torch.save(net.state_dict(), folder / "cnn_rgb64.pt")
    model = xai.load_model(folder / "cnn_rgb64.pt", network=CNN(input_shape=(3, 64, 64), num_classes=10),
                           channels=3, image_size=64)
    start = time.perf_counter()
    result = xai.explain({"cnn_rgb64": model}, data, n_images=8, model_dir=model_dir, trainer=TRAINER)
    print(f"2. 64-px RGB digits, xai's cnn from a state dict, 8 images ({time.perf_counter() - start:.0f} s in all)")
    for method, per in result.metrics["explainers"].items():
        r = per["cnn_rgb64"]
        print(f"   {method:22s} " + (f"skipped: {r['skipped']}" if "skipped" in r else
                                     f"{r['time_per_image_s'] * 1000:9.1f} ms/image  (with its measurements "
                                     f"{r['wall_time_s']:.1f} s)"))


def main() -> None:
    model_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("models")
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory(prefix="xai-files-") as tmp:
        same_weights(model_dir, Path(tmp))
        rgb_times(model_dir, Path(tmp))


if __name__ == "__main__":
    main()
