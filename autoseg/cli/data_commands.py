"""``verify``, ``demo-data``, ``demo`` and ``evaluate``: option declarations and handlers."""

from __future__ import annotations

import argparse
from pathlib import Path

from autoseg.cli.options import (
    add_num_workers,
    add_work,
    workspace_from_args,
)


def add_verify(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "dataset", type=Path, help="dataset folder (nnU-Net v2 raw or MSD) or CSV manifest"
    )
    p.add_argument("--json", action="store_true", help="print a machine-readable JSON report")
    add_num_workers(p, "reading images")


def run_verify(args: argparse.Namespace) -> int:
    from autoseg.data.verify import run_verify_command

    return run_verify_command(args.dataset, as_json=args.json, num_workers=args.num_workers)


def add_demo_data(p: argparse.ArgumentParser) -> None:
    from autoseg.data.synthetic import add_generator_arguments

    p.add_argument("out", type=Path, help="folder to write the dataset into (nnU-Net v2 format)")
    add_generator_arguments(p)


def run_demo_data(args: argparse.Namespace) -> int:
    from autoseg.data.synthetic import generate_from_args

    return generate_from_args(args)


def add_demo(p: argparse.ArgumentParser) -> None:
    add_work(p)
    p.add_argument("--quick", action="store_true", help="a ~2 minute version (used by tests)")
    p.add_argument("--seed", type=int, default=0, help="seed of the phantom generator and training")


def run_demo(args: argparse.Namespace) -> int:
    from autoseg.demo import format_demo_report, run_demo

    result = run_demo(workspace_from_args(args), quick=args.quick, seed=args.seed)
    print(format_demo_report(result))
    return 0


def add_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("pred", type=Path, help="folder of predicted label maps")
    p.add_argument("gt", type=Path, help="folder of reference label maps (matched by file name)")
    p.add_argument(
        "--labels",
        type=int,
        nargs="+",
        metavar="L",
        help="label values to score (default: the dataset.json's, else every "
        "non-zero value in the references)",
    )
    p.add_argument(
        "--regions",
        metavar="FILE_OR_JSON",
        help="regions as a JSON file or string, e.g. '{\"whole tumour\": [1, 2, 3]}'",
    )
    p.add_argument(
        "--dataset-json",
        type=Path,
        metavar="PATH",
        help="dataset.json giving labels and regions (list-valued labels entries)",
    )
    p.add_argument(
        "--nsd-tolerance",
        type=float,
        default=1.0,
        metavar="MM",
        help="tolerance of the normalised surface Dice in mm (default: 1.0)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder for metrics.csv and summary.json (default: PRED)",
    )
    add_num_workers(p, "scoring cases")


def run_evaluate(args: argparse.Namespace) -> int:
    from autoseg.evaluation import evaluate_and_write, format_table

    summary = evaluate_and_write(
        args.pred,
        args.gt,
        labels=args.labels,
        regions=args.regions,
        dataset_json=args.dataset_json,
        nsd_tolerance_mm=args.nsd_tolerance,
        out_dir=args.out,
        num_workers=args.num_workers,
    )
    print(format_table(summary))
    return 0
