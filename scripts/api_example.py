"""The README's Python API example, runnable: your own arrays, your own torch net and scikit-learn SVM.

    python scripts/api_example.py [--out outputs/api_example]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.svm import SVC
from torch import nn

import xai_cli as xai


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="run directory to write (default: outputs/api_example-<time>)")
    args = parser.parse_args()
    start = time.perf_counter()

    # your data: scikit-learn's 8x8 digits as plain arrays, 8 px, no resizing
    digits = load_digits()
    x, y = (digits.images / 16.0).astype(np.float32), digits.target
    data = xai.datasets.from_arrays(x[:1400], y[:1400], x[1400:], y[1400:], class_names=[str(i) for i in range(10)],
                                    name="digits 8x8")

    # your models: a small torch net trained here, and a fitted scikit-learn SVM
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 64, 10))
    train = data.split("train")
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(200):
        optimiser.zero_grad()
        nn.functional.cross_entropy(net(train.x), train.y).backward()
        optimiser.step()
    svm = SVC(probability=True, random_state=0).fit(train.x.reshape(len(train), -1).numpy(), train.y.numpy())

    result = xai.explain({"net": net.eval(), "svm": svm}, data, explainers=["saliency", "kernel_shap"], n_images=8,
                         seed=0)
    for explainer, by_model in result.metrics["explainers"].items():
        for model, r in by_model.items():
            print(f"{explainer:12s} {model:4s}", r.get("skipped") or
                  f"deletion AUC {r['deletion_auc']:.3f} (random order {r['deletion_auc_random']:.3f})  "
                  f"{r['time_per_image_s'] * 1000:.1f} ms/image")
    print("test accuracy:", {m: round(v["accuracy"]["test"], 4) for m, v in result.metrics["models"].items()})
    out = args.out or f"outputs/api_example-{time.strftime('%Y-%m-%d_%H-%M-%S')}"
    print("report:", result.save(out), f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
