"""``ensemble`` and ``apply-postprocessing``: folders of predictions (nnU-Net's
``nnUNetv2_ensemble`` and ``nnUNetv2_apply_postprocessing``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from autoseg.cli.options import add_num_workers, workspace_from_args


def _add_output(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUTPUT", help="folder")
    p.add_argument("--overwrite", action="store_true", help="redo cases whose output exists")
    add_num_workers(p, "processing cases")


def add_ensemble(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-i",
        "--input",
        type=Path,
        nargs="+",
        required=True,
        metavar="DIR",
        help="two or more prediction folders holding <case>.npz probabilities and label maps "
        "(predict --save-probabilities, or a fold's validation/)",
    )
    _add_output(p)
    p.add_argument(
        "--save-probabilities",
        action="store_true",
        help="also write the averaged probabilities, OUTPUT/<case>.npz (float16)",
    )
    p.add_argument(
        "--postprocessing",
        type=Path,
        default=None,
        metavar="FILE",
        help="apply a postprocessing rule: a best.json or a JSON object such as "
        '\'{"1": true, "2": false}\' in a file',
    )
    p.add_argument(
        "--dataset-json",
        type=Path,
        default=None,
        metavar="PATH",
        help="the dataset's dataset.json: with regions_class_order (region-based training) "
        "the probabilities are region sigmoids, thresholded at 0.5 and painted in that order",
    )


def run_ensemble(args: argparse.Namespace) -> int:
    from autoseg.ensembling.folders import ensemble_folders, load_postprocessing_rule
    from autoseg.evaluation.targets import read_dataset_targets

    rule = None if args.postprocessing is None else load_postprocessing_rule(args.postprocessing)
    targets = None if args.dataset_json is None else read_dataset_targets(args.dataset_json)
    report = ensemble_folders(
        args.input,
        args.output,
        save_probabilities=args.save_probabilities,
        postprocessing=rule,
        overwrite=args.overwrite,
        num_workers=args.num_workers,
        regions_class_order=None if targets is None else targets.regions_class_order,
    )
    print(report.summary())
    return report.exit_code


def add_apply_postprocessing(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-i", "--input", type=Path, required=True, metavar="DIR", help="folder of label maps"
    )
    _add_output(p)
    rule = p.add_mutually_exclusive_group()
    rule.add_argument(
        "--work",
        type=Path,
        default=None,
        metavar="DIR",
        help="workspace whose best.json holds the rule (default: $AUTOSEG_WORK, else "
        "./autoseg_work)",
    )
    rule.add_argument(
        "--postprocessing",
        type=Path,
        default=None,
        metavar="FILE",
        help='a best.json, or a JSON object of label -> true/false such as {"1": true}',
    )


def run_apply_postprocessing(args: argparse.Namespace) -> int:
    from autoseg.ensembling.folders import apply_postprocessing_to_folder, load_postprocessing_rule

    source = args.postprocessing or workspace_from_args(args).best_json
    report = apply_postprocessing_to_folder(
        args.input,
        args.output,
        load_postprocessing_rule(source),
        overwrite=args.overwrite,
        num_workers=args.num_workers,
    )
    print(report.summary())
    return report.exit_code
