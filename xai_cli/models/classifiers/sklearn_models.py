"""scikit-learn classifiers (RBF SVM, logistic regression) behind the common interface."""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import skops.io
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
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
        masked = self._masked if self._masked is not None and self._masked.describes(X, self) else None
        coef = self._pair_coefficients()
        out = np.empty((len(X), coef.shape[1]))
        for lo in range(0, len(X), 1024):
            kernel = (masked.kernel(slice(lo, lo + 1024), self) if masked is not None
                      else rbf_kernel(X[lo : lo + 1024], self.support_vectors_, gamma=self._gamma))
            out[lo : lo + 1024] = kernel @ coef + self._intercept_
        return out

    _masked: MaskedRows | None = None  # set only inside `masked_rows`; a class default, so never saved

    @contextmanager
    def masked_rows(self, rows: MaskedRows) -> Iterator[None]:
        """Inside: inputs that `rows` describes get their kernel from it, any others the usual way."""
        self._masked = rows
        try:
            yield
        finally:
            del self._masked

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


class MaskedRows:
    """Inputs that are one image with regions set to a fill: row r is `image` where `coalitions[r, region]` is
    1 and `fill` elsewhere (KernelSHAP's and LIME's perturbed images), in the feature space the SVC sees.

    Why by hand: their RBF kernel against the support vectors needs no (rows x features) product. With d =
    image - fill, x.s = fill.s + sum over the regions on of d_region.s, and |x|^2 likewise: one (regions x
    support vectors) table per image and a (rows x regions) product replace the (rows x pixels) one (~47
    superpixels instead of 784 pixels on MNIST). The same kernel to float rounding (sums in another order);
    `describes` checks the first row against the real inputs before it is used."""

    def __init__(self, image: np.ndarray, fill: np.ndarray, regions: np.ndarray, coalitions: np.ndarray) -> None:
        self.image, self.fill, self.regions = image, fill, regions  # (features,) each; regions: index per feature
        self.coalitions = coalitions.astype(np.float64)  # (rows, regions)
        self._tables: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def _table(self, svc: SVC) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """x.s per row and support vector, |x|^2 per row, |s|^2 per support vector."""
        if id(svc) not in self._tables:
            sv = svc.support_vectors_
            onehot = np.zeros((self.coalitions.shape[1], len(self.image)))
            onehot[self.regions, np.arange(len(self.image))] = 1.0
            x_dot_s = self.coalitions @ ((onehot * (self.image - self.fill)) @ sv.T) + sv @ self.fill
            x_sq = self.coalitions @ (onehot @ (self.image**2 - self.fill**2)) + self.fill @ self.fill
            self._tables[id(svc)] = (x_dot_s, x_sq, np.einsum("ij,ij->i", sv, sv))
        return self._tables[id(svc)]

    def kernel(self, rows: slice, svc: SVC) -> np.ndarray:
        x_dot_s, x_sq, s_sq = self._table(svc)
        out = x_dot_s[rows] * -2.0  # in place from here on: the (rows x support vectors) arrays are the cost
        out += x_sq[rows, None]
        out += s_sq[None, :]
        np.maximum(out, 0.0, out=out)  # squared distances, clipped at 0 as rbf_kernel clips them
        out *= -svc._gamma
        return np.exp(out, out=out)

    def describes(self, X: np.ndarray, svc: SVC) -> bool:
        """These inputs are these rows: as many, and the first row's kernel is the plain one."""
        if len(X) != len(self.coalitions):
            return False
        plain = rbf_kernel(X[:1], svc.support_vectors_, gamma=svc._gamma)
        return bool(np.allclose(self.kernel(slice(0, 1), svc), plain, rtol=1e-9, atol=1e-12))


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

    @property
    def calibrates(self) -> bool:
        """Whether the pipeline ends in a CalibratedClassifierCV (which `fit_calibrated_on` can fit once)."""
        return isinstance(self.pipeline.steps[-1][1], CalibratedClassifierCV)

    def fit_calibrated_on(self, x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray,
                          x_cal: torch.Tensor | np.ndarray, y_cal: torch.Tensor | np.ndarray) -> "SklearnClassifier":
        """Fit the calibrated estimator once on (x, y) and its calibration (the configured method) on held-out
        (x_cal, y_cal): scikit-learn's recommendation when held-out data exist, instead of the cross-validation's
        k extra fits (an RBF SVM on 20,000 MNIST images: 27 s instead of 107 s, test accuracy 97.51 vs 97.52 %)."""
        *scaling, (name, calibrated) = self.pipeline.steps
        if not isinstance(calibrated, CalibratedClassifierCV):
            raise TypeError(f"held-out calibration needs a CalibratedClassifierCV, the pipeline ends in {name}")
        features, held_out = self._flat(x), self._flat(x_cal)
        for _, step in scaling:  # fitted on the training images only, applied to both
            features = step.fit_transform(features)
            held_out = step.transform(held_out)
        model = clone(calibrated.estimator).fit(features, np.asarray(y))
        frozen = clone(calibrated).set_params(estimator=FrozenEstimator(model), cv=None, ensemble="auto", n_jobs=None)
        self.pipeline.steps[-1] = (name, frozen.fit(held_out, np.asarray(y_cal)))
        return self

    def predict_proba(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        return self.pipeline.predict_proba(self._flat(x)).astype(np.float32)

    def masked_predictor(self, image: np.ndarray, fill: float,
                         segments: np.ndarray) -> Callable[[np.ndarray], np.ndarray] | None:
        """coalitions (rows, regions) 0/1 -> probabilities of `image` (C, H, W) with the regions of `segments`
        (H, W) that are 0 set to `fill`, through `MaskedRows`: for an RBF SVM behind feature-wise scaling only
        (None otherwise). The same probabilities as `predict_proba` on the built images."""
        *scaling, last = [step for _, step in self.pipeline.steps]
        svcs = [last] if isinstance(last, BlasRBFSVC) else \
            [_unfrozen(c.estimator) for c in getattr(last, "calibrated_classifiers_", [])]
        if not svcs or not all(isinstance(s, BlasRBFSVC) and s.kernel == "rbf" for s in svcs) or \
                not all(isinstance(step, StandardScaler) for step in scaling):
            return None
        regions = np.broadcast_to(segments, image.shape).ravel()  # features flatten channel-first
        given = self._flat(np.stack([image, np.full_like(image, fill)]))
        seen = given
        for step in scaling:  # feature-wise affine: scaling a masked image masks the scaled image
            seen = step.transform(seen)

        def predict(coalitions: np.ndarray) -> np.ndarray:
            rows = MaskedRows(seen[0], seen[1], regions, coalitions)
            inputs = np.where(coalitions.astype(bool)[:, regions], given[0], given[1])  # validated, checked against
            with ExitStack() as stack:
                for svc in svcs:
                    stack.enter_context(svc.masked_rows(rows))
                return self.pipeline.predict_proba(inputs).astype(np.float32)

        return predict

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


def _unfrozen(estimator: BaseEstimator) -> BaseEstimator:
    """The fitted estimator inside a FrozenEstimator (held-out calibration), or the estimator itself."""
    return estimator.estimator if isinstance(estimator, FrozenEstimator) else estimator


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
