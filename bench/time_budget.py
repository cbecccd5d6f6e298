"""Does ``--time-budget T`` end on time when the machine's load changes mid-run? (not a test)

Plans a dataset (default: the real Hippocampus dev set, read in place), then trains fold 0 of
a configuration with ``autoseg train --time-budget T`` twice per budget: on a quiet machine,
and with a CPU hog (one busy process per core) started at 30 % and stopped at 60 % of the
budget (``--hog-window``: a burst at 5-15 % falls on the final validation's probe, after the
first epoch). For each run it prints the fold's own account (``train_config.json``: training,
final validation and total seconds), the whole command's wall time, the ratio to T (the
promise: 0.95-1.02), the epochs run and their length, and the last learning rate (the schedule
must reach ~0 however much the hog took). Results also go to OUT/results.json.

    python bench/time_budget.py --out /tmp/budget                      # 5 and 10 minutes
    python bench/time_budget.py --out /tmp/budget --budgets 2m --configs deepmedic
    python bench/time_budget.py --out /tmp/b --budgets 3m --hog-window 0.05 0.15 --no-quiet \
        --heuristics small.json --threads 1 -np 0

No assertions: a benchmark prints what it measures.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
HIPPOCAMPUS = REPO.parent / "shared" / "data" / "Task04_Hippocampus_dev"


def _spin() -> None:
    while True:
        pass


def _hog(start: float, stop: float) -> threading.Timer:
    """Start one busy process per core after ``start`` seconds, kill them at ``stop``."""
    context = multiprocessing.get_context("spawn")
    procs: list[Any] = []

    def begin() -> None:
        for _ in range(os.cpu_count() or 1):
            proc = context.Process(target=_spin, daemon=True)
            proc.start()
            procs.append(proc)

    def end() -> None:
        for proc in procs:
            proc.kill()
            proc.join()

    threading.Timer(start, begin).start()
    timer = threading.Timer(stop, end)
    timer.start()
    return timer


def _autoseg(*args: str) -> list[str]:
    return [sys.executable, "-m", "autoseg", *args]


def _run(
    work: Path, config: str, budget: float, hog: tuple[float, float] | None, extra: list[str]
) -> dict[str, Any]:
    command = _autoseg("train", "--work", str(work), "--config", config, "fold=0")
    command += ["--time-budget", f"{budget:g}s", "--overwrite", *extra]
    timer = _hog(hog[0] * budget, hog[1] * budget) if hog else None
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if timer is not None:
        timer.join()
    fold = work / "results" / config / "fold_0"
    result: dict[str, Any] = {"budget": budget, "hog": hog, "wall": wall, "rc": done.returncode}
    if done.returncode != 0:
        result["error"] = done.stderr.strip().splitlines()[-1:]
        return result
    recorded = json.loads((fold / "train_config.json").read_text())
    final = torch.load(fold / "checkpoint_final.pt", weights_only=True)
    state = json.loads(final["state_json"])
    summary = json.loads((fold / "validation" / "summary.json").read_text())
    result.update(
        seconds=recorded["seconds"],
        epochs=state["epoch"],
        iters_per_epoch=state["iters_per_epoch"],
        last_lr=final["optimizer"]["param_groups"][0]["lr"],
        first_lr=state["history"][0]["lr"],
        dice=summary["summary"]["foreground_mean"]["dice"],
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dataset", type=Path, default=HIPPOCAMPUS)
    parser.add_argument("--budgets", nargs="+", default=["5m", "10m"])
    parser.add_argument("--configs", nargs="+", default=["unet3d"])
    parser.add_argument("--no-quiet", action="store_true", help="only the runs with a hog")
    parser.add_argument(
        "--hog-window", nargs=2, type=float, default=[0.3, 0.6], metavar=("START", "STOP"),
        help="when the hog runs, as fractions of the budget (default: 0.3 0.6)",
    )  # fmt: skip
    parser.add_argument("--heuristics", type=Path, help="planner heuristics for the plan")
    args, extra = parser.parse_known_args()
    sys.path.insert(0, str(REPO))
    from autoseg.durations import parse_duration

    work = args.out / "work"
    plan = _autoseg("-q", "plan", str(args.dataset), "--work", str(work))
    if args.heuristics is not None:
        plan += ["--heuristics", str(args.heuristics)]
    subprocess.run(plan, check=True)
    rows = []
    print(f"load average at start: {os.getloadavg()}")
    for config in args.configs:
        for text in args.budgets:
            budget = parse_duration(text)
            window = (args.hog_window[0], args.hog_window[1])
            for hog in (None, window) if not args.no_quiet else (window,):
                row = {"config": config, **_run(work, config, budget, hog, extra)}
                row["load_after"] = os.getloadavg()[0]
                rows.append(row)
                (args.out / "results.json").write_text(json.dumps(rows, indent=1))
                _print_row(row)


def _window(hog: Any) -> str:
    return f"{hog[0]:g}-{hog[1]:g} T" if hog else "none"


def _print_row(row: dict[str, Any]) -> None:
    if "seconds" not in row:
        print(f"{row['config']} {row['budget']:.0f} s hog={row['hog']}: failed {row.get('error')}")
        return
    s, budget = row["seconds"], row["budget"]
    print(
        f"{row['config']:9} T={budget:5.0f} s hog={_window(row['hog']):9} "
        f"train {s['training']:6.1f} + validation {s['validation']:5.1f} = {s['total']:6.1f} s "
        f"({s['total'] / budget:.3f} T); command {row['wall']:6.1f} s "
        f"({row['wall'] / budget:.3f} T); {row['epochs']} epochs; lr {row['first_lr']:.2e} -> "
        f"{row['last_lr']:.1e}; Dice {row['dice']:.3f}; load {row['load_after']:.2f}"
    )


if __name__ == "__main__":
    main()
