"""``verify``, ``demo-data``, ``demo`` and ``evaluate``: option declarations and handlers."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from autoseg.cli.options import (
    add_num_workers,
    add_work,
    non_negative_float,
    non_negative_int,
    workspace_from_args,
)
from autoseg.data.phantom_spec import MAX_NESTED_CLASSES, SPACING_MODES, PhantomSpec


def add_verify(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "dataset", type=Path, help="dataset folder (nnU-Net v2 raw or MSD) or CSV manifest"
    )
    p.add_argument("--json", action="store_true", help="print a machine-readable JSON report")
    add_num_workers(p, "reading images")


def run_verify(args: argparse.Namespace) -> int:
    """Every problem is one line on stderr (``autoseg: error: <case> <file>: <what is
    wrong>``), then every warning (``autoseg: warning: ...``), and the summary goes to stdout;
    with ``--json`` the JSON report goes to stdout. Exit status 0 when nothing is wrong
    (warnings included), 2 otherwise."""
    from autoseg.data.verify import format_report, verify_dataset

    report = verify_dataset(args.dataset, num_workers=args.num_workers)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        for problem in report.problems:
            print(f"autoseg: error: {problem}", file=sys.stderr)
        for warning in report.warnings:
            print(f"autoseg: warning: {warning}", file=sys.stderr)
        print(format_report(report))
    return 0 if report.ok else 2


def add_demo_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", type=Path, help="folder to write the dataset into (nnU-Net v2 format)")
    d: dict[str, Any] = {f.name: f.default for f in fields(PhantomSpec)}
    add = p.add_argument
    add("--cases", type=int, default=d["num_train_cases"], metavar="N", help="training cases")
    add(
        "--test-cases",
        type=int,
        default=d["num_test_cases"],
        metavar="N",
        help="held-out cases written to imagesTs/labelsTs",
    )
    add(
        "--channels",
        nargs="+",
        default=list(d["channels"]),
        metavar="NAME",
        help="modality names, e.g. T1 FLAIR (MRI-like) or CT (Hounsfield units)",
    )
    add(
        "--nested-classes",
        type=int,
        default=d["nested_classes"],
        metavar="K",
        help=f"nested lesion sub-regions, classes 1..K (1..{MAX_NESTED_CLASSES})",
    )
    add("--no-rare-class", action="store_true", help="omit the small rare class K+1")
    add(
        "--regions",
        action="store_true",
        help="declare the nested classes as nested regions (region-based training, nnU-Net "
        "style): with --nested-classes 3, whole tumour [1, 2, 3], tumour core [2, 3], "
        "enhancing tumour [3] (BraTS-like)",
    )
    add(
        "--sparse-slices",
        type=int,
        default=d["sparse_slices"],
        metavar="N",
        help="annotate every N-th axial slice of the training cases only; the rest get the "
        "'ignore' label (default: 0, dense)",
    )
    add(
        "--spacing",
        choices=SPACING_MODES,
        default=d["spacing"],
        help="voxel spacing drawn per case: iso 1 mm, varied, aniso (3-5 mm slices) or "
        "thick (0.7 x 0.7 x 5 mm)",
    )
    add(
        "--shape",
        type=int,
        nargs=3,
        default=list(d["base_shape"]),
        metavar=("Z", "Y", "X"),
        help="typical image shape in voxels",
    )
    add("--roi", action="store_true", help="write body ROI masks to roisTr/roisTs")
    add(
        "--cases-per-patient",
        type=int,
        default=d["cases_per_patient"],
        metavar="N",
        help="scans per patient (writes patient groups into dataset.json when > 1)",
    )
    add(
        "--noise",
        type=non_negative_float,
        default=d["noise"],
        help="noise level (fraction of tissue range)",
    )
    add(
        "--bias-field",
        type=non_negative_float,
        default=d["bias_field"],
        help="MRI bias field strength",
    )
    add(
        "--file-ending",
        default=d["file_ending"],
        metavar="ENDING",
        help="image file ending: .nii.gz (default), .nii, .nrrd, .nhdr, .mha or .mhd",
    )
    add("--seed", type=int, default=d["seed"], help="seed (same seed, same bytes)")
    add("--overwrite", action="store_true", help="replace an existing dataset in OUT")


def _phantom_spec(args: argparse.Namespace) -> PhantomSpec:
    """The :class:`PhantomSpec` described by parsed ``demo-data`` options."""
    return PhantomSpec(
        num_train_cases=args.cases,
        num_test_cases=args.test_cases,
        channels=tuple(args.channels),
        nested_classes=args.nested_classes,
        rare_class=not args.no_rare_class,
        spacing=args.spacing,
        base_shape=tuple(args.shape),
        with_roi=args.roi,
        cases_per_patient=args.cases_per_patient,
        noise=args.noise,
        bias_field=args.bias_field,
        file_ending=args.file_ending,
        seed=args.seed,
        regions=args.regions,
        sparse_slices=args.sparse_slices,
    )


def run_demo_data(args: argparse.Namespace) -> int:
    from autoseg.data.synthetic import generate_phantom_dataset

    dataset = generate_phantom_dataset(args.out, _phantom_spec(args), overwrite=args.overwrite)
    labels = ", ".join(f"{v} {n}" for n, v in dataset.labels.items())
    print(
        f"wrote {len(dataset.cases)} training and {len(dataset.test_cases)} test cases "
        f"(channels {', '.join(dataset.channel_names)}; labels {labels}) to {args.out}"
    )
    return 0


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
        type=non_negative_int,
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
        type=non_negative_float,
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
