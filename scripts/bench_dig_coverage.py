"""How much of two models' disagreement the discrepancy search finds, for how many queries: the DIG paper's
moons setting, beside the public DIG code's figures (issue 21).

    python scripts/bench_dig_coverage.py                       # xai's defaults
    python scripts/bench_dig_coverage.py --steps 32 --refine-rounds 0       # the search before tracing
    python scripts/bench_dig_coverage.py --anchors 700 --neighbours 10 --steps 16 --refine-rounds 0

Setting (as the public DIG code was run): make_moons(1000, noise=0.3, random_state=0), a 70/30 split
(random_state=0), scikit-learn MLPClassifier((64, 64), max_iter=2000, random_state=0) against
SVC(kernel="rbf", random_state=0). Coverage: on a 400 x 400 grid over [-2.5, 3.5] x [-2, 2.5], the cells
where the two models disagree and that lie within 0.3 of a training point; the share of them within δ of a
found area (an area is the segment from its first to its last disagreeing point). Precision: the share of
found areas whose inside points the models really disagree on. Distinct points: every point the search
asked the models about, counted once.

Public DIG (k_init 10, 5 refinement epochs), measured by the issue's author: 32,428 distinct points,
coverage 0.941 / 0.969 / 0.990 at δ = 0.025 / 0.05 / 0.1. Its graph search (DIG.py's `Digger(k_init=10).fit(5)`
on these fitted models) took 7.3 s on an AMD EPYC, 2 cores (the README says how it was run); ours prints its own.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.datasets import make_moons
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KDTree
from sklearn.neural_network import MLPClassifier
from sklearn.svm import SVC

from xai_cli.analysis.discrepancy import DiscrepancySettings
from xai_cli.dig.coverage import coverage
from xai_cli.dig.pool import ModelPool
from xai_cli.dig.refine import trace_areas
from xai_cli.dig.search import search
from xai_cli.dig.segments import choose_anchors, counterfactual_segments
from xai_cli.dig.space import InputSpace

DIG_REFERENCE = {"points": 32_428, "coverage": (0.941, 0.969, 0.990)}
DELTAS = (0.025, 0.05, 0.1)


class RecordingPool(ModelPool):
    """A pool that keeps every point it is asked about, to count the distinct ones."""

    def __init__(self, models: dict) -> None:
        super().__init__(models)
        self.seen: list[np.ndarray] = []

    def _labels(self, x: torch.Tensor) -> np.ndarray:
        self.seen.append(x.detach().cpu().numpy().reshape(len(x), -1).astype(np.float32))
        return super()._labels(x)

    def distinct(self) -> int:
        return len(np.unique(np.concatenate(self.seen), axis=0)) if self.seen else 0


class Torchless:
    """A fitted scikit-learn model as the pool calls it (float32 tensors in, probabilities out)."""

    def __init__(self, model: object) -> None:
        self.model = model

    def predict_proba(self, x: torch.Tensor) -> np.ndarray:
        """One-hot of the model's own `predict`: the SVC's decision function decides, as in the DIG code (its
        Platt-scaled probabilities may pick the other class near the boundary)."""
        labels = self.model.predict(x.detach().cpu().numpy().astype(np.float64))  # type: ignore[attr-defined]
        return np.eye(2)[labels]


def fitted_models() -> tuple[dict[str, object], np.ndarray, np.ndarray, dict[str, float]]:
    x, y = make_moons(1000, noise=0.3, random_state=0)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0)
    mlp = MLPClassifier((64, 64), max_iter=2000, random_state=0).fit(x_train, y_train)
    svm = SVC(kernel="rbf", random_state=0, probability=True).fit(x_train, y_train)
    facts = {"mlp_test_accuracy": mlp.score(x_test, y_test), "svm_test_accuracy": svm.score(x_test, y_test),
             "test_disagreement": float((mlp.predict(x_test) != svm.predict(x_test)).mean())}
    return {"mlp": mlp, "svm": svm}, x_train, y_train, facts


def disagreement_cells(models: dict[str, object], x_train: np.ndarray) -> np.ndarray:
    """Centres of the grid cells where the models disagree within 0.3 of a training point."""
    gx, gy = np.meshgrid(np.linspace(-2.5, 3.5, 400), np.linspace(-2.0, 2.5, 400))
    cells = np.c_[gx.ravel(), gy.ravel()]
    labels = [m.predict(cells) for m in models.values()]  # type: ignore[attr-defined]
    near = KDTree(x_train).query(cells, k=1)[0][:, 0] <= 0.3
    return cells[(labels[0] != labels[1]) & near]


def main() -> None:
    defaults = DiscrepancySettings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--anchors", type=int, default=defaults.anchors)
    parser.add_argument("--neighbours", type=int, default=defaults.neighbours)
    parser.add_argument("--steps", type=int, default=defaults.n_steps)
    parser.add_argument("--refine-rounds", type=int, default=defaults.refine_rounds)
    parser.add_argument("--refine-segments", type=int, default=defaults.refine_segments)
    parser.add_argument("--refine-steps", type=int, default=defaults.refine_steps)
    parser.add_argument("--refine-eps", type=float, default=defaults.refine_eps)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    models, x_train, y_train, facts = fitted_models()
    print("models: mlp test accuracy {mlp_test_accuracy:.3f}, svm {svm_test_accuracy:.3f}, test disagreement "
          "{test_disagreement:.3f}".format(**facts))
    pool = RecordingPool({name: Torchless(m) for name, m in models.items()})
    space = InputSpace()
    space.input_shape = (2,)  # points of the plane
    codes = torch.as_tensor(x_train, dtype=torch.float32)

    start = time.perf_counter()
    # anchors as the product chooses them: disagreements first, then the least confident (Platt for the SVC)
    probs = np.stack([m.predict_proba(x_train) for m in models.values()])  # type: ignore[attr-defined]
    labels = np.stack([m.predict(x_train) for m in models.values()])  # type: ignore[attr-defined]
    anchors = choose_anchors(labels, probs.max(2).min(0), args.anchors, "uncertain", args.seed)
    pairs = counterfactual_segments(codes, labels, anchors, args.neighbours)
    z_from, z_to = codes[pairs[:, 0]], codes[pairs[:, 1]]
    found = search(space, pool, z_from, z_to, args.steps, defaults.eps)
    traced = trace_areas(space, pool, found.areas, z_from, z_to, args.refine_rounds, args.refine_segments,
                         args.refine_steps, args.refine_eps, args.seed)
    seconds = time.perf_counter() - start
    areas = found.areas
    on_segments = len(areas)

    a = np.concatenate([areas.z_start_in, traced.areas.z_start_in]).astype(np.float64)
    b = np.concatenate([areas.z_end_in, traced.areas.z_end_in]).astype(np.float64)
    inside = np.concatenate([a, b, (a + b) / 2])
    labels = np.stack([m.predict(inside) for m in models.values()])  # type: ignore[attr-defined]
    precision = float((labels[0] != labels[1]).mean()) if len(inside) else float("nan")
    cells = disagreement_cells(models, x_train)
    covered = coverage(cells, a, b, DELTAS)

    print(f"search: {args.anchors} anchors, {args.neighbours} neighbours, {args.steps} steps; "
          f"{traced.rounds} of {args.refine_rounds} tracing rounds ran, {len(traced.z_from)} traced segments "
          f"of {args.refine_steps} steps")
    print(f"areas {on_segments} on counterfactual segments + {len(traced.areas)} traced, disagreement cells {len(cells)}, precision {precision:.3f}, "
          f"search and segments {seconds:.2f} s")
    dig = DIG_REFERENCE["coverage"]
    print(f"public DIG: distinct points {DIG_REFERENCE['points']}, coverage "
          + " / ".join(f"{c:.3f}" for c in dig))
    print(f"xai: distinct points {pool.distinct()}, coverage " + " / ".join(f"{c:.3f}" for c in covered)
          + f" at δ = {' / '.join(str(d) for d in DELTAS)}")


if __name__ == "__main__":
    main()
