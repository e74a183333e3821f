#!/usr/bin/env python
"""`xai explain` on a busy machine: alone, then beside one CPU-bound process per usable CPU, alternated.

A fair share of a machine whose every core is also wanted by one other process is half of it, so a
slowdown of 2× is what sharing costs; thread pools that spin against each other cost far more (40–60× was
seen before their sizes followed the CPUs this process may use). Target: ≤ 3×.

The model store is warmed first (the digits cnn and svm_rbf are trained once, outside the timings); each
round then runs the same command alone and loaded, whole, imports included.

    python scripts/bench_contention.py                      # 2 rounds, 8 images
    python scripts/bench_contention.py --rounds 3 --images 16
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from xai_cli.utils.threads import usable_cpus


def spin_python() -> None:
    """A CPU-bound neighbour: pure Python, one core, no threads of its own."""
    while True:
        pass


def spin_torch() -> None:
    """A CPU-bound neighbour as another ML job is: small matrix products on torch's default thread pool."""
    import torch

    a = torch.randn(256, 256)
    while True:
        a = torch.tanh(a @ a)


NEIGHBOURS = {"python": spin_python, "torch": spin_torch}


def run_explain(work: Path, name: str, args: argparse.Namespace) -> tuple[float, dict]:
    run_dir = work / name
    command = [sys.executable, "-m", "xai_cli.cli", "explain", "dataset=digits",
               f"explainers=[{args.methods}]", f"explain.n_images={args.images}",
               f"paths.model_dir={work / 'models'}", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, **dict(item.split("=", 1) for item in args.env)}
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    seconds = time.perf_counter() - start
    return seconds, json.loads((run_dir / "metrics.json").read_text())


def per_image(metrics: dict) -> dict[str, float]:
    """Seconds per image of each method, summed over the classifiers."""
    return {method: sum(cell["time_per_image_s"] for cell in by_model.values() if "time_per_image_s" in cell)
            for method, by_model in metrics["explainers"].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--methods", default="saliency,kernel_shap,lime")
    parser.add_argument("--neighbour", choices=sorted(NEIGHBOURS), default="python",
                        help="what each neighbour runs: a pure-Python loop, or torch on its own thread pool")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="set in the explain process only (e.g. OMP_WAIT_POLICY=PASSIVE), to compare remedies")
    args = parser.parse_args()
    cpus = usable_cpus()
    work = Path(tempfile.mkdtemp(prefix="xai-contention-"))
    try:
        run_explain(work, "warm", args)  # trains the digits models into the store: not timed
        times: dict[str, list[float]] = {"alone": [], "loaded": []}
        methods: dict[str, list[dict[str, float]]] = {"alone": [], "loaded": []}
        for round_ in range(args.rounds):
            for condition in ("alone", "loaded"):
                neighbours = [multiprocessing.Process(target=NEIGHBOURS[args.neighbour], daemon=True) for _ in range(cpus)]
                if condition == "loaded":
                    for process in neighbours:
                        process.start()
                    time.sleep(1.0)
                try:
                    seconds, metrics = run_explain(work, f"{condition}-{round_}", args)
                finally:
                    for process in neighbours:
                        if process.is_alive():
                            process.kill()
                            process.join()
                times[condition].append(seconds)
                methods[condition].append(per_image(metrics))
                print(f"round {round_ + 1} {condition:6s} {seconds:7.1f} s", flush=True)
        print(f"\n{cpus} usable CPUs, {len(os.sched_getaffinity(0))} in the affinity mask, "
              f"{cpus} {args.neighbour} neighbours when loaded")
        print(f"{'method':14s} {'alone s/img':>12s} {'loaded s/img':>13s} {'slowdown':>9s}")
        for method in methods["alone"][0]:
            alone = statistics.median(m[method] for m in methods["alone"])
            loaded = statistics.median(m[method] for m in methods["loaded"])
            print(f"{method:14s} {alone:12.4f} {loaded:13.4f} {loaded / alone:8.2f}×")
        alone, loaded = statistics.median(times["alone"]), statistics.median(times["loaded"])
        print(f"contention: alone {alone:.1f} s, loaded {loaded:.1f} s, slowdown {loaded / alone:.2f}× "
              f"(target ≤ 3×, a fair share is 2×)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
