"""scikit-learn classifiers (RBF SVM, logistic regression) behind the common interface."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import skops.io
import torch
from sklearn.base import BaseEstimator
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils import check_array


class BlasRBFSVC(SVC):
    """scikit-learn's SVC, with the RBF decision function computed by matrix products.

    libsvm evaluates the kernel one (input, support vector) pair at a time, without BLAS: about 470
    MNIST images/s against 6,000 support vectors, minutes for a test set, and the analyses query the SVM
    far more than that. The same one-vs-one sums computed from one BLAS kernel matrix per batch give
    libsvm's values to float rounding (tests compare them) many times faster. Fitting, Platt
    calibration and voting stay scikit-learn's; other kernels use libsvm unchanged.
    """

    def _dense_decision_function(self, X: np.ndarray) -> np.ndarray:
        if self.kernel != "rbf":
            return super()._dense_decision_function(X)
        X = check_array(X, dtype=np.float64, order="C")
        coef = self._pair_coefficients()
        out = np.empty((len(X), coef.shape[1]))
        for lo in range(0, len(X), 1024):
            kernel = rbf_kernel(X[lo : lo + 1024], self.support_vectors_, gamma=self._gamma)
            out[lo : lo + 1024] = kernel @ coef + self._intercept_
        return out

    def _pair_coefficients(self) -> np.ndarray:
        """(support vectors, class pairs): every one-vs-one decision value as one column of a single product
        with the kernel matrix (the same as summing pair by pair; scripts/bench_svm.py times both)."""
        starts = np.concatenate([[0], np.cumsum(self._n_support)])
        n_class = len(self._n_support)
        pairs = [(i, j) for i in range(n_class) for j in range(i + 1, n_class)]
        coef = np.zeros((len(self.support_vectors_), len(pairs)))
        for p, (i, j) in enumerate(pairs):
            si, sj = slice(starts[i], starts[i + 1]), slice(starts[j], starts[j + 1])
            # libsvm's svm_predict_values: coefficients of class i's vectors sit in row j-1, of j's in row i
            coef[si, p] = self._dual_coef_[j - 1, si]
            coef[sj, p] = self._dual_coef_[i, sj]
        return coef


# The only types outside skops's trusted defaults (scikit-learn, numpy, builtins) that we write. A store is
# shared (a cluster filesystem): a pickle in it would run whatever its writer put there for every reader, so
# entries are skops files, and a file naming any other type is refused without running anything.
WRITTEN_TYPES = frozenset({
    "xai_cli.models.classifiers.sklearn_models.BlasRBFSVC",
    "sklearn.calibration._CalibratedClassifier",  # the Platt scaling of svm_rbf (scikit-learn's private classes)
    "sklearn.calibration._SigmoidCalibration",
})


class SklearnClassifier:
    """Any scikit-learn estimator with `predict_proba`, on flattened inputs, optionally standardised."""

    def __init__(self, estimator: BaseEstimator, standardize: bool = False) -> None:
        steps = [StandardScaler()] if standardize else []
        self.pipeline: Pipeline = make_pipeline(*steps, estimator)

    @staticmethod
    def _flat(x: torch.Tensor | np.ndarray) -> np.ndarray:
        x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        return x.reshape(len(x), -1).astype(np.float64, copy=False)

    def fit(self, x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray) -> "SklearnClassifier":
        self.pipeline.fit(self._flat(x), np.asarray(y))
        return self

    def predict_proba(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        return self.pipeline.predict_proba(self._flat(x)).astype(np.float32)

    def num_parameters(self) -> int:
        """Numbers the fitted model stores (support vectors, dual coefficients, weights, scaler statistics)."""
        return _fitted_floats(self.pipeline, set())

    def set_seed(self, seed: int) -> None:
        """Seed every random_state of the pipeline, nested estimators included (e.g. a calibrated SVC)."""
        params = self.pipeline.get_params(deep=True)
        self.pipeline.set_params(**{k: seed for k in params if k == "random_state" or k.endswith("__random_state")})

    def save(self, path: Path) -> None:
        skops.io.dump(self.pipeline, path)

    def load(self, path: Path) -> None:
        """Read a skops file; one naming a type we do not write is refused before anything in it is built."""
        untrusted = set(skops.io.get_untrusted_types(file=path))
        unexpected = sorted(untrusted - WRITTEN_TYPES)
        if unexpected:
            raise ValueError(f"{path.name} holds types xai does not write ({', '.join(unexpected)}): not loaded")
        pipeline = skops.io.load(path, trusted=sorted(untrusted))
        expected = [type(step).__name__ for _, step in self.pipeline.steps]  # as built from the config
        found = [type(step).__name__ for _, step in pipeline.steps] if isinstance(pipeline, Pipeline) else \
            [type(pipeline).__name__]
        if found != expected:
            raise ValueError(f"{path.name} holds {' + '.join(found)}, not the {' + '.join(expected)} asked for")
        self.pipeline = pipeline


def _fitted_floats(obj: object, seen: set[int]) -> int:
    """Float values in the fitted (trailing-underscore) arrays of an estimator and the estimators it holds."""
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, (list, tuple)):
        return sum(_fitted_floats(o, seen) for o in obj)
    if isinstance(obj, Pipeline):
        return sum(_fitted_floats(step, seen) for _, step in obj.steps)
    if not hasattr(obj, "__dict__"):
        return 0
    total = 0
    for name, value in vars(obj).items():
        if isinstance(value, np.ndarray):
            if name.endswith("_") and value.dtype.kind == "f":
                total += value.size
        elif isinstance(value, (BaseEstimator, list, tuple)) or type(value).__module__.startswith("sklearn"):
            total += _fitted_floats(value, seen)
    return total
