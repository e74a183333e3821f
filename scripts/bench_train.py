#!/usr/bin/env python
"""Training throughput: xai's Lightning path vs a plain PyTorch loop, same model, data, optimiser, epochs.

Runs are alternated (xai, plain, xai, plain, ...) so that both see the same machine state. Neither side
validates; the plain loop is the fastest idiomatic one (a random permutation, one tensor gather per batch).

    python scripts/bench_train.py                          # cnn, 1 epoch of full MNIST from ../shared/data
    python scripts/bench_train.py --model lenet --rounds 3
    python scripts/bench_train.py --dataset digits --epochs 5
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from xai_cli.config import compose

REPO = Path(__file__).resolve().parents[1]


def load(args: argparse.Namespace):
    overrides = [f"dataset={args.dataset}", f"classifiers=[{args.model}]", f"paths.data_dir={args.data_dir}",
                 "trainer.limit_val_batches=0", f"trainer.max_epochs={args.epochs}", "trainer.accelerator=cpu"]
    cfg = compose("train", overrides)
    data = instantiate(cfg.dataset)
    data.setup()
    return cfg, data


def xai_path(cfg, data, seed: int) -> float:
    torch.manual_seed(seed)
    model = instantiate(cfg.classifiers[cfg_name(cfg)].model)
    fit = instantiate(cfg.classifiers[cfg_name(cfg)].fit)
    return fit.fit(model, data, cfg.trainer, seed, "bench").train_time_s


def plain_loop(cfg, data, seed: int) -> float:
    torch.manual_seed(seed)
    spec = cfg.classifiers[cfg_name(cfg)]
    model = instantiate(spec.model)
    fit = instantiate(spec.fit)
    x, y = data.split("train").x, data.split("train").y
    bs, epochs = data.batch_size, int(cfg.trainer.max_epochs)
    steps = epochs * ((len(y) + bs - 1) // bs)
    optimizer = fit.optimizer(model.parameters())
    scheduler = fit.scheduler(optimizer, total_steps=steps) if fit.scheduler else None
    gen = torch.Generator().manual_seed(seed)
    model.train()
    start = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), bs):
            idx = perm[i : i + bs]
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            if scheduler:
                scheduler.step()
    return time.perf_counter() - start


def cfg_name(cfg) -> str:
    return next(iter(cfg.classifiers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    cfg, data = load(args)
    n_images = len(data.split("train")) * args.epochs
    print(f"{args.model} on {args.dataset}: {n_images:,} training images per run, {torch.get_num_threads()} threads")
    times: dict[str, list[float]] = {"xai": [], "plain": []}
    for r in range(args.rounds):
        for name, run in (("xai", xai_path), ("plain", plain_loop)):
            seconds = run(cfg, data, seed=r)
            times[name].append(seconds)
            print(f"  round {r + 1} {name:5s}: {seconds:7.1f} s  {n_images / seconds:8.0f} images/s", flush=True)
    xai_rate = n_images / statistics.median(times["xai"])
    plain_rate = n_images / statistics.median(times["plain"])
    print(f"median images/s: xai {xai_rate:.0f}, plain {plain_rate:.0f}; xai/plain = {xai_rate / plain_rate:.3f} "
          f"(target >= 0.90)")


if __name__ == "__main__":
    main()
