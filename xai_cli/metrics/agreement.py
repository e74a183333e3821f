"""How distinguishable two models' explanations of the same images are (Agree to Disagree, WACV 2022).

The main measure is learned: a logistic regression is told to say which model an explanation came from,
per class, and S(a, b) = 2·|held-out accuracy − 0.5| (0: indistinguishable, 1: always told apart). The
split is by image — both models' explanations of one image sit on the same side — so identical models
give exactly 0.5 held-out accuracy, and image identity cannot leak from training to test. The
alternative distinguishers of the paper's slides are statistical distances between the two maps of each
image, averaged over images. None of this exists in a library; scipy and scikit-learn do the parts.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp, wilcoxon
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def distinguishability(maps_a: np.ndarray, maps_b: np.ndarray, labels: np.ndarray, test_size: float = 0.3,
                       seed: int = 0, shuffled: bool = False) -> float:
    """S(a, b) averaged over classes; `maps_*` are (N, ...) explanations of the same N images.

    `shuffled` gives the permutation null: each image's two maps swap labels with probability 1/2 (the
    same regression, the same by-image split), so nothing is left to tell apart and S measures only the
    distinguisher's noise floor at this many images.
    """
    a, b = maps_a.reshape(len(maps_a), -1), maps_b.reshape(len(maps_b), -1)
    rng = np.random.default_rng(seed)
    if shuffled:
        swap = rng.random(len(a)) < 0.5
        a, b = np.where(swap[:, None], b, a), np.where(swap[:, None], a, b)
    scores = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(test_size * len(idx)))
        if n_test < 1 or len(idx) - n_test < 1:
            continue
        test, train = idx[:n_test], idx[n_test:]
        x_train = np.concatenate([a[train], b[train]])
        y_train = np.r_[np.zeros(len(train)), np.ones(len(train))]
        x_test = np.concatenate([a[test], b[test]])
        y_test = np.r_[np.zeros(len(test)), np.ones(len(test))]
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        clf.fit(x_train, y_train)
        scores.append(2 * abs(float((clf.predict(x_test) == y_test).mean()) - 0.5))
    if not scores:
        raise ValueError("too few images per class to split: raise consistency.n_per_class")
    return float(np.mean(scores))


def _distributions(maps: np.ndarray) -> np.ndarray:
    flat = np.abs(maps.reshape(len(maps), -1)).astype(np.float64)
    total = flat.sum(1, keepdims=True)
    return np.divide(flat, total, out=np.full_like(flat, 1.0 / flat.shape[1]), where=total > 0)


def jensen_shannon(maps_a: np.ndarray, maps_b: np.ndarray) -> float:
    """Mean over images of the Jensen–Shannon distance (base 2, in [0, 1]) between the normalised |maps|."""
    p, q = _distributions(maps_a), _distributions(maps_b)
    return float(np.mean([jensenshannon(pi, qi, base=2) for pi, qi in zip(p, q)]))


def kolmogorov_smirnov(maps_a: np.ndarray, maps_b: np.ndarray) -> float:
    """Mean over images of the two-sample KS statistic between the two maps' values."""
    a, b = maps_a.reshape(len(maps_a), -1), maps_b.reshape(len(maps_b), -1)
    return float(np.mean([ks_2samp(ai, bi).statistic for ai, bi in zip(a, b)]))


def wilcoxon_statistic(maps_a: np.ndarray, maps_b: np.ndarray) -> float:
    """Mean over images of the Wilcoxon signed-rank statistic of the paired pixel values (0 if identical)."""
    a, b = maps_a.reshape(len(maps_a), -1), maps_b.reshape(len(maps_b), -1)
    out = []
    for ai, bi in zip(a, b):
        if np.array_equal(ai, bi):
            out.append(0.0)
        else:
            out.append(float(wilcoxon(ai, bi, zero_method="zsplit").statistic))
    return float(np.mean(out))


def consistency(scores: list[float]) -> float | None:
    """C = 1 − mean S over the compared pairs (None when there is no pair)."""
    return 1.0 - float(np.mean(scores)) if scores else None


def consistency_interval(scores: list[float], level: float = 0.95, resamples: int = 2000,
                         seed: int = 0) -> list[float] | None:
    """A percentile bootstrap interval of C over the compared pairs (None with fewer than two pairs).

    It reflects how much S varies between pairs (training randomness and the regression's split noise
    together); pairs that share a copy are not independent, so read it as a guide, not an exact coverage.
    """
    if len(scores) < 2:
        return None
    s = np.asarray(scores, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = s[rng.integers(0, len(s), (resamples, len(s)))].mean(1)
    lo, hi = np.quantile(1.0 - means, [(1 - level) / 2, (1 + level) / 2])
    return [float(lo), float(hi)]
