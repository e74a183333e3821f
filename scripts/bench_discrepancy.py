#!/usr/bin/env python
"""The batched discrepancy search vs a per-segment loop over the same segments, in one run.

Uses the MNIST cnn and svm_rbf and the β-VAE from the model store (trained there first if missing), draws
the counterfactual segments exactly as `xai discrepancy` does, then searches them twice: all segments
together (one pool query for the grid, one per bisection round), and one segment at a time (the shape of
the reference DIG code). Prints pool queries, points and seconds of each, checks that both find the
same areas, and the speed-up (target ≥ 10×).

    python scripts/bench_discrepancy.py --data-dir ../shared/data --model-dir models
    python scripts/bench_discrepancy.py --anchors 40 --dataset digits     # a quick look
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from xai_cli.analysis.discrepancy import DiscrepancySettings

REPO = Path(__file__).resolve().parents[1]
DEFAULTS = DiscrepancySettings()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--model-dir", default="models")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--anchors", type=int, default=200)
    parser.add_argument("--neighbours", type=int, default=5)
    parser.add_argument("--steps", type=int, default=DEFAULTS.n_steps)
    parser.add_argument("--eps", type=float, default=DEFAULTS.eps)
    parser.add_argument("--refine-rounds", type=int, default=DEFAULTS.refine_rounds)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")

    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from xai_cli.analysis.context import ModelSpec, RunContext, specs_from
    from xai_cli.analysis.discrepancy import build_segments
    from xai_cli.config import compose
    from xai_cli.dig.pool import ModelPool
    from xai_cli.dig.refine import trace_areas
    from xai_cli.dig.search import search

    overrides = [f"dataset={args.dataset}", "classifiers=[cnn,svm_rbf]", f"paths.data_dir={args.data_dir}",
                 f"paths.model_dir={args.model_dir}", f"discrepancy.anchors={args.anchors}",
                 f"discrepancy.neighbours={args.neighbours}"]
    cfg = compose("discrepancy", overrides)
    ctx = RunContext.from_config(cfg)
    models = ctx.trained(specs_from(cfg.classifiers))
    pool = ModelPool({name: m.classifier for name, m in models.items()})
    settings = DiscrepancySettings.of(OmegaConf.to_container(cfg.discrepancy, resolve=True))
    space = instantiate(cfg.space)
    _, codes, _, pairs = build_segments(ctx, space, ModelSpec("beta_vae", cfg.generator), models, settings)
    z_from, z_to = codes[pairs[:, 0]], codes[pairs[:, 1]]
    print(f"{args.dataset}: cnn + svm_rbf, β-VAE latent space, {len(pairs)} segments, {args.steps} grid points, "
          f"eps {args.eps}, {args.refine_rounds} tracing rounds, {torch.get_num_threads()} threads")

    pool.calls = pool.points = 0
    start = time.perf_counter()
    batched = search(space, pool, z_from, z_to, args.steps, args.eps).areas
    traced = trace_areas(space, pool, batched, z_from, z_to, args.refine_rounds, settings.refine_segments,
                         settings.refine_steps, settings.refine_eps, ctx.seed)
    batched_s, batched_calls, batched_points = time.perf_counter() - start, pool.calls, pool.points

    # the same segments one at a time (the shape of the reference DIG code): the counterfactual ones, then
    # the traced ones (tracing chooses them from the areas, so the loop is given the batched run's choice)
    pool.calls = pool.points = 0
    start = time.perf_counter()
    loop = [search(space, pool, z_from[s : s + 1], z_to[s : s + 1], args.steps, args.eps).areas for s in range(len(pairs))]
    t_from, t_to = torch.as_tensor(traced.z_from), torch.as_tensor(traced.z_to)
    loop_traced = [search(space, pool, t_from[s : s + 1], t_to[s : s + 1], settings.refine_steps,
                          settings.refine_eps).areas for s in range(len(t_from))]
    loop_s, loop_calls, loop_points = time.perf_counter() - start, pool.calls, pool.points

    def same(parts: list, joined: object) -> bool:
        return (np.array_equal(np.concatenate([np.full(len(a), s) for s, a in enumerate(parts)] or [[]]), joined.segment)
                and np.allclose(np.concatenate([a.t_start for a in parts] or [[]]), joined.t_start)
                and np.allclose(np.concatenate([a.t_end for a in parts] or [[]]), joined.t_end))

    print(f"{'search':18s} {'pool queries':>12s} {'points':>10s} {'seconds':>9s}")
    print(f"{'batched':18s} {batched_calls:12d} {batched_points:10d} {batched_s:9.2f}")
    print(f"{'per-segment loop':18s} {loop_calls:12d} {loop_points:10d} {loop_s:9.2f}")
    print(f"areas: {len(batched)} ({1000 * len(batched) / max(len(pairs), 1):.0f} per 1,000 segments) + "
          f"{len(traced.areas)} traced on {len(t_from)} segments ({traced.rounds} rounds); same areas both ways: "
          f"{same(loop, batched) and same(loop_traced, traced.areas)}; speed-up {loop_s / batched_s:.1f}x "
          "(target ≥ 10x)")


if __name__ == "__main__":
    main()
