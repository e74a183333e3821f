#!/usr/bin/env python
"""Every command on full MNIST, whole (imports, training, analysis, report), from an empty model store and then
from the warm store it left: the table of issue 20 ("≤ 15 minutes from empty, ≤ 1 minute warm").

Each command runs twice in a fresh store of its own (so that no command profits from another's models),
alone: run nothing else on the machine meanwhile. All together this takes hours on 2 cores (the uncertainty
preset alone ~40 min); pick commands with --only.

    python scripts/bench_commands.py --data-dir ../shared/data                    # all, in order
    python scripts/bench_commands.py --data-dir ../shared/data --only consistency explain
    python scripts/bench_commands.py --data-dir ../shared/data --only consistency --keep /tmp/stores
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The commands, as a user types them (paths added by the script).
COMMANDS: dict[str, list[str]] = {
    "train": ["train", "experiment=mnist"],
    "explain": ["explain", "dataset=mnist", "explain.n_images=32",
                "classifiers=[cnn,svm_rbf]"],  # the default ten explainers
    "discrepancy": ["discrepancy", "dataset=mnist"],  # cnn vs svm_rbf
    "consistency": ["consistency", "dataset=mnist", "classifiers=[mlp,small_cnn,cnn,svm_rbf]"],
    "counterfactual": ["counterfactual", "dataset=mnist", "counterfactual.n_images=100"],
    "uncertainty": ["uncertainty", "experiment=uncertainty_mnist_corrupted"],  # the CPU preset
}


def timed(argv: list[str], log: Path) -> tuple[float, int]:
    start = time.perf_counter()
    with log.open("w") as out:
        code = subprocess.call(argv, stdout=out, stderr=subprocess.STDOUT)
    return time.perf_counter() - start, code


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:04.1f} s" if seconds >= 60 else f"{seconds:.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--only", nargs="+", choices=list(COMMANDS), default=list(COMMANDS))
    parser.add_argument("--keep", type=Path, help="keep each command's store and outputs under this folder")
    args = parser.parse_args()

    root = Path(args.keep or tempfile.mkdtemp(prefix="xai-bench-commands-"))
    xai = shutil.which("xai") or sys.exit("xai is not installed: pip install -e .")
    print(f"machine: {platform.processor() or platform.machine()}, store and logs under {root}")
    rows = []
    for name in args.only:
        folder = root / name
        shutil.rmtree(folder / "models", ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        argv = [xai, *COMMANDS[name], f"paths.data_dir={args.data_dir.resolve()}",
                f"paths.model_dir={folder / 'models'}", f"paths.output_dir={folder / 'outputs'}"]
        empty, code_empty = timed(argv, folder / "empty.log")
        warm, code_warm = timed(argv, folder / "warm.log")
        rows.append((name, empty, warm, code_empty or code_warm))
        print(f"{name}: empty {minutes(empty)}, warm {minutes(warm)}"
              + (f"  (exit {code_empty}/{code_warm}: see {folder}/*.log)" if code_empty or code_warm else ""),
              flush=True)
    print("\n| command | from empty | warm |\n|---|---|---|")
    for name, empty, warm, code in rows:
        print(f"| {' '.join(COMMANDS[name])} | {minutes(empty)} | {minutes(warm)} |" + (" failed" if code else ""))
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
