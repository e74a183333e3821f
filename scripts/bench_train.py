#!/usr/bin/env python
"""Training throughput: xai's Lightning path in fp32 and in bf16 vs a plain PyTorch loop, same model, data,
optimiser, epochs.

Runs are alternated (xai fp32, xai bf16, plain, xai fp32, ...) so that all see the same machine state. None
validates; the plain loop is the fastest idiomatic one (a random permutation, one tensor gather per batch).
bf16 is `trainer.precision=bf16-mixed` (Lightning's autocast to bfloat16); it runs only where oneDNN has
bf16 kernels for this CPU (AVX512-BF16 or AMX), and `--accuracy` also trains each precision with the
classifier's whole recipe and prints its test accuracy.

    python scripts/bench_train.py                          # cnn, 1 epoch of full MNIST from ../shared/data
    python scripts/bench_train.py --model lenet --rounds 3
    python scripts/bench_train.py --dataset digits --epochs 5
    python scripts/bench_train.py --accuracy                # + the cnn's test accuracy in fp32 and bf16
    python scripts/bench_train.py --model mlp --one-thread  # + xai fp32 on one thread
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
from xai_cli.metrics.classification import accuracy

REPO = Path(__file__).resolve().parents[1]


def load(args: argparse.Namespace, epochs: int | None):
    overrides = [f"dataset={args.dataset}", f"classifiers=[{args.model}]", f"paths.data_dir={args.data_dir}",
                 "trainer.limit_val_batches=0", "trainer.accelerator=cpu"]
    if epochs is not None:
        overrides.append(f"trainer.max_epochs={epochs}")
    cfg = compose("train", overrides)
    data = instantiate(cfg.dataset)
    data.setup()
    return cfg, data


def xai_fit(cfg, data, seed: int, precision: str):
    torch.manual_seed(seed)
    spec = cfg.classifiers[cfg_name(cfg)]
    model, fit = instantiate(spec.model), instantiate(spec.fit)
    trainer_cfg = cfg.trainer.copy()
    trainer_cfg.precision = precision
    return model, fit.fit(model, data, trainer_cfg, seed, "bench")


def xai_path(cfg, data, seed: int) -> float:
    return xai_fit(cfg, data, seed, "32-true")[1].train_time_s


def xai_bf16(cfg, data, seed: int) -> float:
    return xai_fit(cfg, data, seed, "bf16-mixed")[1].train_time_s


def xai_one_thread(cfg, data, seed: int) -> float:
    """xai's fp32 path on one thread: whether two copies side by side (consistency) would beat one at a time."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return xai_path(cfg, data, seed)
    finally:
        torch.set_num_threads(threads)


def test_accuracy(model, data) -> float:
    test = data.split("test")
    return accuracy(model.eval().predict_proba(test.x), test.y.numpy())


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
    parser.add_argument("--one-thread", action="store_true",
                        help="also train on one thread (xai fp32): two such runs side by side vs one on all threads")
    parser.add_argument("--accuracy", action="store_true",
                        help="also train the whole recipe once per precision and print the test accuracies")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    bf16 = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    cfg, data = load(args, args.epochs)
    n_images = len(data.split("train")) * args.epochs
    print(f"{args.model} on {args.dataset}: {n_images:,} training images per run, {torch.get_num_threads()} threads, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}, bf16 kernels: {'yes' if bf16 else 'no'}")
    runs = {"xai": xai_path, **({"bf16": xai_bf16} if bf16 else {}), "plain": plain_loop,
            **({"1thr": xai_one_thread} if args.one_thread else {})}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(args.rounds):
        for name, run in runs.items():
            seconds = run(cfg, data, seed=r)
            times[name].append(seconds)
            print(f"  round {r + 1} {name:5s}: {seconds:7.1f} s  {n_images / seconds:8.0f} images/s", flush=True)
    rate = {name: n_images / statistics.median(t) for name, t in times.items()}
    print("median images/s: " + ", ".join(f"{name} {r:.0f}" for name, r in rate.items())
          + f"; xai/plain = {rate['xai'] / rate['plain']:.3f} (target >= 0.90)"
          + (f"; bf16/xai = {rate['bf16'] / rate['xai']:.3f}" if bf16 else "")
          + (f"; 1thr/xai = {rate['1thr'] / rate['xai']:.3f} (two one-thread runs side by side pay above 0.5)"
             if args.one_thread else ""))
    if args.accuracy:
        cfg, data = load(args, None)  # the classifier's own epochs and schedule
        for precision in ("32-true", *(("bf16-mixed",) if bf16 else ())):
            model, record = xai_fit(cfg, data, 0, precision)
            print(f"whole recipe, {precision}: {record.train_time_s:.1f} s, test accuracy "
                  f"{test_accuracy(model, data):.4f}", flush=True)


if __name__ == "__main__":
    main()
