#!/usr/bin/env python
"""The RBF SVM's decision function: libsvm (scikit-learn's) vs xai's BLAS path, same fitted SVC, alternated.

Fits `BlasRBFSVC(C=10, gamma="scale")` (svm_rbf's settings) on a seeded subset of the MNIST training set,
then evaluates the one-vs-one decision values of the 10,000 test images both ways in alternated rounds:
libsvm's own kernel loop (`SVC._dense_decision_function`), one kernel matrix per batch times the dual
coefficients of each class pair in turn (xai's first version, "pairs"), and that matrix times all pairs'
coefficients at once (`BlasRBFSVC`). Agreement is over predicted labels: libsvm's `predict` against the one-vs-one
vote on our values (ties to the lower class, as libsvm breaks them).

    python scripts/bench_svm.py --data-dir ../shared/data              # 20,000 training images, as svm_rbf
    python scripts/bench_svm.py --data-dir ../shared/data --train 5000 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.svm import SVC

from xai_cli.config import compose
from xai_cli.models.classifiers.sklearn_models import BlasRBFSVC

REPO = Path(__file__).resolve().parents[1]


def pair_loop(model: BlasRBFSVC, x: np.ndarray) -> np.ndarray:
    """The BLAS kernel with the one-vs-one sums pair by pair (xai's first version): what the single
    product with `_pair_coefficients` replaced."""
    starts = np.concatenate([[0], np.cumsum(model._n_support)])
    k = len(model._n_support)
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    out = np.empty((len(x), len(pairs)))
    for lo in range(0, len(x), 1024):
        kernel = rbf_kernel(x[lo : lo + 1024], model.support_vectors_, gamma=model._gamma)
        for p, (i, j) in enumerate(pairs):
            si, sj = slice(starts[i], starts[i + 1]), slice(starts[j], starts[j + 1])
            out[lo : lo + 1024, p] = (kernel[:, si] @ model._dual_coef_[j - 1, si]
                                      + kernel[:, sj] @ model._dual_coef_[i, sj] + model._intercept_[p])
    return out


def votes(decision: np.ndarray, n_classes: int) -> np.ndarray:
    """libsvm's one-vs-one vote: pair (i, j) positive votes i, else j; the first of the most voted wins."""
    counts = np.zeros((len(decision), n_classes), dtype=int)
    pairs = [(i, j) for i in range(n_classes) for j in range(i + 1, n_classes)]
    for p, (i, j) in enumerate(pairs):
        counts[:, i] += decision[:, p] > 0
        counts[:, j] += decision[:, p] <= 0
    return counts.argmax(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--train", type=int, default=20000, help="training images (svm_rbf uses 20,000)")
    parser.add_argument("--test", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    data = instantiate(compose("train", ["dataset=mnist", f"paths.data_dir={args.data_dir}"]).dataset)
    data.setup()
    train, test = data.split("train"), data.split("test")
    pick = np.random.default_rng(0).choice(len(train), min(args.train, len(train)), replace=False)
    x = train.x[pick].reshape(len(pick), -1).double().numpy()
    y = train.y[pick].numpy()
    x_test = test.x[: args.test].reshape(min(args.test, len(test)), -1).double().numpy()

    start = time.perf_counter()
    model = BlasRBFSVC(C=10, gamma="scale").fit(x, y)
    print(f"fit on {len(x):,} images: {time.perf_counter() - start:.1f} s, {len(model.support_vectors_):,} "
          f"support vectors", flush=True)
    times: dict[str, list[float]] = {"sklearn": [], "pairs": [], "blas": []}
    outputs: dict[str, np.ndarray] = {}
    for _ in range(args.rounds):
        for name, run in (("sklearn", lambda: SVC._dense_decision_function(model, x_test)),
                          ("pairs", lambda: pair_loop(model, x_test)),
                          ("blas", lambda: model._dense_decision_function(x_test))):
            start = time.perf_counter()
            outputs[name] = run()
            times[name].append(time.perf_counter() - start)
            print(f"{name:8s} {times[name][-1]:7.2f} s", flush=True)
    labels = model.predict(x_test)  # libsvm's own prediction (BaseLibSVM.predict does not use our path)
    ours = model.classes_[votes(outputs["blas"], len(model.classes_))]
    gap = float(np.abs(outputs["blas"] - outputs["sklearn"]).max())
    slow, fast = statistics.median(times["sklearn"]), statistics.median(times["blas"])
    print(f"largest difference of decision values: {gap:.2e}; pair by pair "
          f"{statistics.median(times['pairs']):.2f} s ({statistics.median(times['pairs']) / fast:.1f}× the single product)")
    print(f"svm: sklearn {slow:.2f} s, blas {fast:.2f} s, speedup {slow / fast:.1f}×, "
          f"agreement {float(np.mean(ours == labels)):.4f} ({len(x_test):,} test images)")


if __name__ == "__main__":
    main()
