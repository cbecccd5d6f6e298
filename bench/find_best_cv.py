"""Every planned configuration, 5-fold cross-validated, then find-best (not a test).

Plans a dataset (default: the real Hippocampus dev set, read in place) for this machine's
CPU, trains every fold of every planned configuration (``--configs``, default: all planned)
with ``autoseg train --time-budget`` per fold, and runs ``autoseg find-best``, whose
candidate table (every configuration and every ensemble, with bootstrap CIs) is the result.
Resumable: a workspace that is planned already is not planned again, and the folds are
trained with ``--resume``, so finished folds are skipped and a fold stopped part way (a
killed session) continues from its last epoch within its own budget. Prints each command
and the load average before each fold; after each fold, its Dice and seconds go to
OUT/folds.json (to commit as they come); at the end, a table of the CV means.

    python bench/find_best_cv.py --out /tmp/find_best --minutes 2
    python bench/find_best_cv.py --out /tmp/fb --configs unet3d unet2d --minutes 5
    python bench/find_best_cv.py --out /work/cv60 --configs unet3d deepmedic --minutes 60
    python bench/find_best_cv.py --out /work/cv60 --configs unet3d --minutes 60 --folds 0 1

No assertions: a benchmark prints what it measures.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

from autoseg.cli import main

REPO = Path(__file__).resolve().parents[1]
HIPPOCAMPUS = REPO.parent / "shared" / "data" / "Task04_Hippocampus_dev"


def _run(argv: list[str]) -> float:
    print(f"$ autoseg {shlex.join(argv)}   (load {os.getloadavg()[0]:.2f})", flush=True)
    start = time.perf_counter()
    status = main(argv)
    if status != 0:
        sys.exit(f"command failed with exit status {status}")
    return time.perf_counter() - start


def run(args: argparse.Namespace) -> None:
    """Plan, train every fold of every configuration, find-best, print the summary."""
    work = args.out / "work"
    if (work / "plans.json").is_file():
        print(f"resuming: {work} is planned already", flush=True)
    else:
        _run(["plan", str(args.dataset), "--work", str(work), "--device", "cpu"])
    plans = json.loads((work / "plans.json").read_text())
    planned = list(plans["configurations"])
    configs = [c for c in (args.configs or planned) if c in planned]
    print("planned: " + ", ".join(planned) + "; training: " + ", ".join(configs), flush=True)
    seconds: dict[str, float] = {}
    for config in configs:
        start = time.perf_counter()
        for fold in args.folds:
            argv = ["train", "--work", str(work), "--config", config, f"fold={fold}"]
            argv += ["--time-budget", f"{args.minutes:g}m", "--seed", str(args.seed), "--resume"]
            load = os.getloadavg()[0]
            _run(argv)
            _record_fold(args.out / "folds.json", work, config, fold, load)
        seconds[config] = time.perf_counter() - start
    if sorted(args.folds) != list(range(5)):
        print(f"folds {args.folds} only: find-best waits for all five", flush=True)
        return
    _run(["find-best", "--work", str(work), "--configs", *configs])
    print("\n| configuration | 5 folds, wall (s) | CV foreground Dice |")
    print("|---|---:|---:|")
    for config in configs:
        summary = json.loads((work / "results" / config / "cv_summary.json").read_text())
        dice = summary["summary"]["foreground_mean"]["dice"]
        print(f"| {config} | {seconds.get(config, 0.0):.0f} | {dice:.4f} |")
    best = json.loads((work / "best.json").read_text())
    top = best["candidates"][0]
    print(f"\nfind-best chose {' + '.join(top['configs'])}: {top['score']:.4f}", flush=True)


def _record_fold(path: Path, work: Path, config: str, fold: int, load: float) -> None:
    """Add (or refresh) the fold's Dice and seconds in ``path`` and print them."""
    fold_dir = work / "results" / config / f"fold_{fold}"
    summary = json.loads((fold_dir / "validation" / "summary.json").read_text())["summary"]
    recorded = json.loads((fold_dir / "train_config.json").read_text())
    row = {
        "config": config,
        "fold": fold,
        "dice": summary["foreground_mean"]["dice"],
        "per_label": {name: t["mean"]["dice"] for name, t in summary["targets"].items()},
        "seconds": recorded["seconds"],
        "epochs": recorded["epochs"]["total"],
        "load_at_start": round(load, 2),
        "finished_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }
    rows = json.loads(path.read_text()) if path.is_file() else []
    rows = [r for r in rows if (r["config"], r["fold"]) != (config, fold)] + [row]
    path.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"{config} fold {fold}: Dice {row['dice']:.4f}, {row['seconds']}", flush=True)


def main_cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=HIPPOCAMPUS)
    parser.add_argument("--out", type=Path, required=True, help="work folder (kept: resumable)")
    parser.add_argument("--minutes", type=float, default=2.0, help="training budget per fold")
    parser.add_argument("--configs", nargs="+", help="configurations (default: all planned)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--folds",
        nargs="+",
        type=int,
        default=list(range(5)),
        choices=range(5),
        help="folds to train (default: all five; find-best runs only when all five are asked)",
    )
    args = parser.parse_args()
    if not args.dataset.is_dir():
        sys.exit(f"dataset not found: {args.dataset}")
    run(args)


if __name__ == "__main__":
    main_cli()
