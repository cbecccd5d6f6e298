"""Accuracy of a short CPU training run on a generated two-class phantom (not a test).

Generates a phantom dataset (background + one lesion class, two MRI channels), plans it for
this machine's CPU with the default heuristics, trains fold 0 of both configurations within a
wall-clock budget each, and prints the validation Dice of the fold's held-out cases (full
sliding-window / tiled inference, original geometry) next to the targets (U-Net >= 0.8,
DeepMedic >= 0.7) and the exact commands, so a run can be repeated by hand.

    python bench/train_accuracy.py --minutes 4 --out /tmp/autoseg_accuracy [--threads 1 ...]

Options it does not know are passed on to ``autoseg train``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from autoseg.cli import main

TARGETS = {"unet3d": 0.8, "deepmedic": 0.7}


def _run(argv: list[str]) -> None:
    print("$ autoseg " + shlex.join(argv), flush=True)
    status = main(argv)
    if status != 0:
        sys.exit(f"command failed with exit status {status}")


def run(out: Path, minutes: float, seed: int, configs: list[str], extra: list[str]) -> int:
    """Generate, plan, train; print one line per configuration; 0 when every target is met."""
    dataset, work = out / "dataset", out / "work"
    _run(
        ["demo-data", str(dataset), "--cases", "10", "--test-cases", "0", "--nested-classes",
         "1", "--no-rare-class", "--shape", "32", "40", "40", "--seed", str(seed), "--overwrite"]
    )  # fmt: skip
    _run(["plan", str(dataset), "--work", str(work), "--device", "cpu"])
    failed = 0
    results = []
    for config in configs:
        argv = ["train", "--work", str(work), "--config", config, "fold=0"]
        argv += ["--time-budget", f"{minutes:g}m", "--overwrite", "--seed", str(seed), *extra]
        start = time.perf_counter()
        _run(argv)
        seconds = time.perf_counter() - start
        fold = work / "results" / config / "fold_0"
        summary = json.loads((fold / "validation" / "summary.json").read_text())
        dice = summary["summary"]["foreground_mean"]["dice"]
        epochs = len((fold / "log.jsonl").read_text().splitlines())
        ok = dice >= TARGETS[config]
        failed += not ok
        results.append(
            f"{config:10s} validation Dice {dice:.4f} (target >= {TARGETS[config]}) "
            f"{'PASS' if ok else 'FAIL'}  {epochs} epochs in {seconds / 60:.1f} min  "
            f"command: autoseg {shlex.join(argv)}"
        )
    print("\n".join(results))
    return 1 if failed else 0


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("autoseg_accuracy"))
    parser.add_argument("--minutes", type=float, default=4.0, help="budget per configuration")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--configs", nargs="+", default=["unet3d", "deepmedic"])
    args, extra = parser.parse_known_args()
    args.extra = extra  # any other option goes to 'autoseg train', e.g. --threads 1
    return args


if __name__ == "__main__":
    args = _parse()
    sys.exit(run(args.out, args.minutes, args.seed, args.configs, args.extra))
