"""``plan``, ``train`` and ``find-best``: option declarations and handlers."""

from __future__ import annotations

import argparse
from pathlib import Path

from autoseg.cli.options import (
    add_folds,
    add_num_workers,
    add_work,
    configuration_name,
    parse_size,
    positive_int,
    workspace_from_args,
)
from autoseg.workspace import NUM_FOLDS


def add_plan(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "dataset", type=Path, help="dataset folder (nnU-Net v2 raw or MSD) or CSV manifest"
    )
    add_work(p)
    p.add_argument(
        "--gpu-memory",
        type=parse_size,
        default=None,
        metavar="SIZE",
        help="plan for a GPU with this much memory (e.g. 11GB), found or not",
    )
    p.add_argument(
        "--device",
        choices=("cuda", "cpu"),
        default=None,
        help="plan for this device (default: CUDA when available, else CPU)",
    )
    p.add_argument(
        "--heuristics",
        type=Path,
        default=None,
        metavar="FILE",
        help="JSON overrides of the planner heuristics (e.g. best_heuristics.json)",
    )
    add_num_workers(p, "for fingerprinting and preprocessing")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="plan a different dataset into a workspace trained on another one (deletes its "
        "results/, splits.json and best.json)",
    )


def run_plan(args: argparse.Namespace) -> int:
    from autoseg.planner.summary import format_plan_summary
    from autoseg.planner.workflow import run_plan

    report = run_plan(
        args.dataset,
        workspace_from_args(args),
        heuristics_path=args.heuristics,
        device=args.device,
        gpu_memory_bytes=args.gpu_memory,
        num_workers=args.num_workers,
        overwrite=args.overwrite,
    )
    print(format_plan_summary(report))
    return 0


def add_train(p: argparse.ArgumentParser) -> None:
    from autoseg.cli.train_options import add_train_arguments

    add_folds(
        p,
        "folds",
        nargs="*",
        metavar="fold=FOLDS",
        help="folds to train: every fold of splits.json (default; "
        f"0..{NUM_FOLDS - 1} for the split autoseg makes), fold=2, fold=0,2, 0 1 2 or "
        "fold=all (every case)",
        num_folds=None,
    )
    add_folds(
        p,
        "--fold",
        "--folds",
        metavar="K",
        help="the same as fold=K (e.g. --fold 0 1 2)",
        num_folds=None,
    )
    add_work(p)
    add_train_arguments(p)


def run_train(args: argparse.Namespace) -> int:
    from autoseg.cli.train_options import request_from_args
    from autoseg.errors import ConfigError
    from autoseg.trainers.cross_validation import format_results, run_training

    if args.folds is not None and args.fold is not None:
        raise ConfigError("give the folds once: fold=FOLDS or --fold K, not both")
    folds = args.folds or args.fold or []  # none: every fold of splits.json
    results = run_training(workspace_from_args(args), request_from_args(args, folds))
    if results:  # empty on torchrun's ranks other than 0: rank 0 reports
        print(format_results(results))
    return 0


def add_find_best(p: argparse.ArgumentParser) -> None:
    add_work(p)
    p.add_argument(
        "--configs",
        nargs="+",
        type=configuration_name,
        default=None,
        metavar="CONFIG",
        help="configurations to compare, with their ensembles (default: every trained one)",
    )
    p.add_argument(
        "--metric",
        choices=("dice", "iou", "nsd", "hd95"),
        default="dice",
        help="cross-validation metric, foreground mean (default: dice; hd95: lower wins)",
    )
    p.add_argument(
        "--bootstrap",
        type=positive_int,
        default=2000,
        metavar="N",
        help="bootstrap resamples of the confidence intervals (default: 2000)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default: 0)")
    add_num_workers(p, "scoring cases")


def run_find_best(args: argparse.Namespace) -> int:
    from autoseg.ensembling import find_best, format_best_choice, workspace_target_names

    workspace = workspace_from_args(args)
    choice = find_best(
        workspace,
        args.configs,
        metric=args.metric,
        num_bootstrap=args.bootstrap,
        seed=args.seed,
        num_workers=args.num_workers,
    )
    print(format_best_choice(choice, workspace_target_names(workspace)))
    return 0
