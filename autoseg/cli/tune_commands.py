"""``tune``: option declarations and handler (Optuna tuning of the planner heuristics)."""

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
from autoseg.errors import ConfigError
from autoseg.workspace import NUM_FOLDS


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected minutes (a number), got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of minutes, got {text!r}")
    return value


def _tuning_folds(folds: list[int | str]) -> list[int]:
    if "all" in folds:
        raise ConfigError(f"tuning validates on held-out folds: use 0..{NUM_FOLDS - 1}, not all")
    return [int(f) for f in folds]


def _add_length(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what each trial trains")
    g.add_argument(
        "--configs",
        nargs="+",
        type=configuration_name,
        default=["unet3d", "deepmedic"],
        metavar="CONFIG",
        help="configurations trained per dataset (default: unet3d deepmedic; also unet2d, "
        "unet3d_lowres where a trial plans it; not the cascade)",
    )
    add_folds(
        g,
        "--folds",
        default=[0],
        help=f"folds trained per configuration: 0 (default), 0,1, 0 1 or 0..{NUM_FOLDS - 1}",
    )
    g.add_argument(
        "--budget-minutes",
        type=_minutes,
        default=None,
        metavar="M",
        help="training minutes per trial, split evenly over datasets x configs x folds "
        "(default: 30 unless --epochs is given)",
    )
    g.add_argument("--epochs", type=positive_int, metavar="N", help="fixed epochs per training")
    g.add_argument("--iters-per-epoch", type=positive_int, metavar="N", help="default: 250")
    g.add_argument("--val-iters", type=positive_int, metavar="N", help="default: 50")


def _add_study(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("study")
    g.add_argument(
        "--trials",
        type=positive_int,
        default=20,
        metavar="N",
        help="run until the study holds N finished trials (default: 20; re-running resumes)",
    )
    g.add_argument(
        "--storage",
        default=None,
        metavar="URL",
        help="SQLAlchemy URL shared by all workers (default: sqlite:///<work>/tuning.sqlite3; "
        "postgresql://... for workers on several machines)",
    )
    g.add_argument("--study", default=None, metavar="NAME", help="default: from the dataset names")
    g.add_argument(
        "--pruner", choices=("median", "halving", "hyperband", "none"), default="median",
        help="stop bad trials early on their smoothed pseudo-Dice: median, successive "
        "halving over training time (rungs at the warm-up percent x3, x9, ...), hyperband "
        "(brackets of halving from the warm-up percent), none (default: median)",
    )  # fmt: skip
    g.add_argument(
        "--pruner-startup-trials", type=_non_negative_int, default=3, metavar="N",
        help="completed trials before the median pruner prunes (default: 3)",
    )  # fmt: skip
    g.add_argument(
        "--pruner-warmup", type=_non_negative_int, default=25, metavar="PERCENT",
        help="percent of a trial's training never pruned; the first rung of halving and "
        "hyperband (default: 25)",
    )  # fmt: skip
    g.add_argument("--seed", type=int, default=0, help="sampler and training seed (default: 0)")
    g.add_argument(
        "--heartbeat", type=positive_int, default=60, metavar="SECONDS",
        help="heartbeat of running trials; a worker silent for twice this is failed "
        "(default: 60)",
    )  # fmt: skip
    g.add_argument(
        "--show",
        action="store_true",
        help="print the best trial and parameter importances; write best_heuristics.json, "
        "trials.csv and plots (runs no trial)",
    )


def add_tune(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "datasets", nargs="*", type=Path, metavar="DATASET",
        help="dataset folders or CSV manifests to tune on (optional with --show --study)",
    )  # fmt: skip
    add_work(p)
    _add_length(p)
    _add_study(p)
    g = p.add_argument_group("hardware")
    g.add_argument("--device", choices=("cuda", "cpu"), default=None, help="default: auto")
    g.add_argument(
        "--gpu-memory", type=parse_size, default=None, metavar="SIZE",
        help="plan for this much GPU memory (e.g. 11GB) instead of the detected amount",
    )  # fmt: skip
    g.add_argument(
        "--base-heuristics", type=Path, default=None, metavar="FILE",
        help="JSON of the heuristics that are not tuned (default: the defaults)",
    )  # fmt: skip
    add_num_workers(p, "for fingerprinting and preprocessing")
    g.add_argument(
        "--loader-workers", type=_non_negative_int, default=None, metavar="N",
        help="data-loading processes while training (0: in-process; default: automatic)",
    )  # fmt: skip
    g.add_argument("--threads", type=positive_int, default=None, metavar="N", help="torch threads")
    g.add_argument(
        "--keep-trial-files",
        action="store_true",
        help="keep each trial's preprocessed data, checkpoints and predictions",
    )


def run_tune(args: argparse.Namespace) -> int:
    import logging

    import optuna

    from autoseg.tuning import TuneRequest, format_tune_report, run_show
    from autoseg.tuning import run_tune as tune

    optuna.logging.set_verbosity(logging.WARNING)
    workspace = workspace_from_args(args)
    if args.show:
        from autoseg.tuning.report import format_overview

        overview = run_show(
            workspace,
            datasets=args.datasets,
            storage=args.storage,
            study_name=args.study,
            heartbeat_seconds=args.heartbeat,
        )
        print(format_overview(overview))
        return 0
    request = TuneRequest(
        datasets=tuple(args.datasets),
        trials=args.trials,
        budget_minutes=args.budget_minutes,
        epochs=args.epochs,
        iters_per_epoch=args.iters_per_epoch,
        val_iters=args.val_iters,
        storage=args.storage,
        study_name=args.study,
        configs=tuple(args.configs),
        folds=tuple(_tuning_folds(args.folds)),
        pruner=args.pruner,
        pruner_startup_trials=args.pruner_startup_trials,
        pruner_warmup_percent=args.pruner_warmup,
        seed=args.seed,
        device=args.device,
        gpu_memory_bytes=args.gpu_memory,
        base_heuristics=args.base_heuristics,
        num_workers=args.num_workers,
        loader_workers=args.loader_workers,
        threads=args.threads,
        heartbeat_seconds=args.heartbeat,
        keep_trial_files=args.keep_trial_files,
    )
    print(format_tune_report(tune(workspace, request)))
    return 0
