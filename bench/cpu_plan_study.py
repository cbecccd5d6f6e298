"""Which CPU plan and trainer settings give the best Dice for the same CPU time? (not a test)

Each variant (planner heuristics + ``autoseg train`` options) is planned on a dataset
(default: the real Hippocampus dev set, read in place) and trained on fold 0 for the same
*CPU-time* budget, as a fixed number of iterations: the budget divided by the plan's own
estimate of one iteration on one thread (its analytic GFLOP at the measured one-thread speed
of ``cpu_speed.json``). Every variant runs on one thread (``--threads 1 -np 0``), so two can
run side by side on a shared machine and still be compared: what is compared is Dice after
the same CPU work, not after the same wall time. The final validation (no mirroring) gives
the fold-0 Dice. Results are appended to OUT/results.json as each variant finishes; a
re-run skips the variants already there (resumable), and ``--only NAME`` runs some.

    python bench/cpu_plan_study.py --out bench/results/cpu_plan_study --cpu-minutes 20
    python bench/cpu_plan_study.py --out ... --only unet_adam_025 unet_sgd_025

Two variants side by side: give each its own OUT holding the same ``cpu_speed.json`` (one
measurement, so both plan alike); the split is the same seeded 5-fold split.

No assertions: a benchmark prints what it measures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
HIPPOCAMPUS = REPO.parent / "shared" / "data" / "Task04_Hippocampus_dev"
ITERATIONS_PER_EPOCH = 50

VARIANTS: dict[str, tuple[str, dict[str, Any], list[str]]] = {
    # name: (configuration, heuristics, train options)
    "unet_sgd_025": ("unet3d", {"cpu_seconds_per_iteration": 0.25, "cpu_unet_optimizer": "sgd",
                                "cpu_unet_lr": 1e-2}, []),
    "unet_adam_025": ("unet3d", {"cpu_seconds_per_iteration": 0.25}, []),
    "unet_adam_1s": ("unet3d", {"cpu_seconds_per_iteration": 1.0}, []),
    "deepmedic_sgd_ce_025": ("deepmedic", {"cpu_seconds_per_iteration": 0.25,
                                           "cpu_deepmedic_optimizer": "sgd",
                                           "cpu_deepmedic_lr": 1e-2}, ["--loss", "ce"]),
    "deepmedic_adam_dice_ce_025": (
        "deepmedic",
        {"cpu_seconds_per_iteration": 0.25, "cpu_deepmedic_optimizer": "adam",
         "cpu_deepmedic_lr": 1e-3},
        ["--loss", "dice_ce"],
    ),
    # The mirror rule (planner.md#mirror-axes) against mirroring every axis, CPU defaults.
    "unet_mirror_rule": ("unet3d", {}, []),
    "unet_mirror_all": ("unet3d", {"mirror_order_min_cases": 1_000_000_000}, []),
    "deepmedic_mirror_rule": ("deepmedic", {}, []),
    "deepmedic_mirror_all": ("deepmedic", {"mirror_order_min_cases": 1_000_000_000}, []),
}  # fmt: skip


def _child_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _autoseg(*args: str) -> list[str]:
    return [sys.executable, "-m", "autoseg", *args]


def _iteration_cpu_seconds(plans: dict[str, Any], config: str) -> float:
    """The plan's estimate of one iteration on one thread (GFLOP / one-thread GFLOP/s)."""
    plan = plans["configurations"][config]
    family = "deepmedic" if plan["network"]["kind"] == "deepmedic" else "unet"
    rates = plans["hardware"]["cpu_speed"]["gflops_per_thread"][family]
    rate = rates.get(plan["precision"], rates["fp32"])
    return float(plan["estimated_gflops_per_iteration"]) / float(rate)


def run_variant(name: str, dataset: Path, out: Path, cpu_minutes: float) -> dict[str, Any]:
    """Plan, train fold 0 for the CPU budget, and return the variant's row."""
    config, heuristics, options = VARIANTS[name]
    work = out / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "heuristics.json").write_text(json.dumps(heuristics))
    if (out / "cpu_speed.json").is_file():  # one measurement for every variant
        shutil.copy(out / "cpu_speed.json", work / "cpu_speed.json")
    plan = _autoseg("-q", "plan", str(dataset), "--work", str(work))
    subprocess.run([*plan, "--heuristics", str(work / "heuristics.json")], check=True)
    if not (out / "cpu_speed.json").is_file():
        shutil.copy(work / "cpu_speed.json", out / "cpu_speed.json")
    if (out / "splits.json").is_file():  # the same fold 0 for every variant
        shutil.copy(out / "splits.json", work / "splits.json")
    plans = json.loads((work / "plans.json").read_text())
    per_iteration = _iteration_cpu_seconds(plans, config)
    epochs = max(1, round(cpu_minutes * 60 / per_iteration / ITERATIONS_PER_EPOCH))
    train = _autoseg("-q", "train", "--work", str(work), "--config", config, "fold=0")
    train += ["--threads", "1", "-np", "0", "--epochs", str(epochs), "--no-val-mirroring"]
    train += ["--iters-per-epoch", str(ITERATIONS_PER_EPOCH), "--val-iters", "5", *options]
    cpu, wall = _child_cpu_seconds(), time.perf_counter()
    subprocess.run(train, check=True)
    cpu, wall = _child_cpu_seconds() - cpu, time.perf_counter() - wall
    if not (out / "splits.json").is_file():
        shutil.copy(work / "splits.json", out / "splits.json")
    fold = work / "results" / config / "fold_0"
    summary = json.loads((fold / "validation" / "summary.json").read_text())["summary"]
    plan_entry = plans["configurations"][config]
    return {
        "name": name,
        "configuration": config,
        "heuristics": heuristics,
        "options": options,
        "patch": plan_entry["patch_size"],
        "batch": plan_entry["batch_size"],
        "precision": plan_entry["precision"],
        "optimizer": plan_entry["optimizer"],
        "lr": plan_entry["lr"],
        "mirror_axes": plan_entry["augmentation"]["mirror_axes"],
        "iterations": epochs * ITERATIONS_PER_EPOCH,
        "estimated_iteration_cpu_seconds": per_iteration,
        "cpu_seconds": cpu,
        "wall_seconds": wall,
        "load_average": os.getloadavg()[0],
        "dice": summary["foreground_mean"]["dice"],
        "dice_per_label": {k: v["mean"]["dice"] for k, v in summary["targets"].items()},
        "hd95_mm": summary["foreground_mean"]["hd95_mm"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dataset", type=Path, default=HIPPOCAMPUS)
    parser.add_argument("--cpu-minutes", type=float, default=20.0)
    parser.add_argument("--only", nargs="+", choices=sorted(VARIANTS), default=None)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "results.json"
    rows = json.loads(results_path.read_text()) if results_path.is_file() else []
    done = {row["name"] for row in rows}
    for name in args.only or list(VARIANTS):
        if name in done:
            continue
        rows.append(run_variant(name, args.dataset, args.out, args.cpu_minutes))
        results_path.write_text(json.dumps(rows, indent=1))
    print("| variant | patch x batch | optimizer, lr | iterations | CPU min | Dice | HD95 |")
    print("|---|---|---|---:|---:|---:|---:|")
    for row in rows:
        shape = "x".join(map(str, row["patch"]))
        print(
            f"| {row['name']} | {shape} x {row['batch']} | {row['optimizer']} {row['lr']:g} | "
            f"{row['iterations']} | {row['cpu_seconds'] / 60:.1f} | {row['dice']:.4f} | "
            f"{row['hd95_mm']:.2f} |"
        )


if __name__ == "__main__":
    main()
