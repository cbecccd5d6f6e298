"""``predict`` and ``export-model``: option declarations and handlers."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from autoseg.cli.options import (
    add_folds,
    add_work,
    configuration_name,
    fraction,
    positive_int,
    workspace_from_args,
)
from autoseg.planner.decisions import CANDIDATES
from autoseg.workspace import NUM_FOLDS


def _part(text: str) -> tuple[int, int]:
    part, _, parts = text.partition("/")
    if not (part.isdigit() and parts.isdigit() and 1 <= int(part) <= int(parts)):
        raise argparse.ArgumentTypeError(
            f"invalid part {text!r}; expected K/N with 1 <= K <= N, e.g. 1/4 (the first of 4)"
        )
    return int(part), int(parts)


def _sha256(text: str) -> str:
    value = text.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise argparse.ArgumentTypeError(f"expected 64 hex digits (a SHA-256), got {text!r}")
    return value


def _add_model_choice(
    p: argparse.ArgumentParser, *, choices: tuple[str, ...], default_help: str
) -> None:
    p.add_argument(
        "--config", type=configuration_name, choices=choices, default=None, help=default_help
    )
    add_folds(
        p,
        "--folds",
        "-f",
        help=f"folds to use: 0..{NUM_FOLDS - 1}, 0,2, 0 1 2, 3 or all (default: every trained "
        "fold, or best.json's; a split of your own may have more)",
        num_folds=None,
    )
    p.add_argument(
        "--checkpoint",
        choices=("final", "best", "latest"),
        default="final",
        help="which checkpoint of each fold (default: final)",
    )


def add_predict(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-i",
        "--input",
        type=Path,
        nargs="+",
        required=True,
        metavar="INPUT",
        help="folder of {case}_{XXXX}.nii.gz images (ROI masks: {case}_roi.nii.gz), a CSV "
        "manifest, or the files (one per channel) of one case",
    )
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUTPUT", help="folder")
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--work",
        type=Path,
        default=None,
        metavar="DIR",
        help="trained workspace (default: $AUTOSEG_WORK, else ./autoseg_work)",
    )
    source.add_argument(
        "--model", type=Path, default=None, metavar="ZIP", help="model archive (export-model)"
    )
    p.add_argument(
        "--model-sha256",
        type=_sha256,
        default=None,
        metavar="HEX",
        help="refuse the --model archive unless the whole file has this SHA-256 (the one "
        "export-model printed, obtained from its author)",
    )
    _add_model_choice(
        p,
        choices=("best", *CANDIDATES),
        default_help="configuration, or best = find-best's choice (default: best when "
        "best.json exists, else the only trained configuration)",
    )
    tta = p.add_mutually_exclusive_group()
    tta.add_argument(
        "--tta", dest="tta", action="store_true", default=None,
        help="test-time mirroring: 2-8x the network passes (default: on a GPU; on a CPU when "
        "a case stays within 2 s of network time with it)",
    )  # fmt: skip
    tta.add_argument("--no-tta", dest="tta", action="store_false", help="no test-time mirroring")
    p.add_argument(
        "--step-size",
        type=fraction,
        default=0.5,
        metavar="F",
        help="U-Net window step as a fraction of the patch, in (0, 1] (default: 0.5)",
    )
    p.add_argument(
        "--save-probabilities",
        action="store_true",
        help="also write <case>.npz (key probabilities, float16, original geometry)",
    )
    p.add_argument("--overwrite", action="store_true", help="redo cases whose output exists")
    p.add_argument(
        "--part",
        type=_part,
        default=None,
        metavar="K/N",
        help="predict only part K of N (1 <= K <= N) of the cases, for job arrays: "
        "nnU-Net's -part_id K-1 -num_parts N",
    )
    p.add_argument(
        "--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)"
    )
    p.add_argument(
        "-np",
        "--num-workers",
        type=int,
        default=None,
        metavar="N",
        help="background threads preparing/exporting cases while the network predicts "
        "(default: 1 on a GPU, 0 on the CPU)",
    )
    p.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        metavar="N",
        help="torch CPU threads (default: every core when predicting on the CPU)",
    )
    p.add_argument(
        "--roi", type=Path, default=None, metavar="FILE", help="ROI mask of a single-case input"
    )
    p.add_argument(
        "--save-feature-maps",
        nargs="+",
        default=(),
        metavar="LAYERS",
        help="DeepMedic layers whose feature maps to write, e.g. normal:0,7 subsampled_1:3 fc:0 "
        "(0-based): OUTPUT/<case>_features_<pathway>_layer<i>.nii.gz, float32 X×Y×Z×F in the "
        "input's geometry, from the first fold's model",
    )


def run_predict(args: argparse.Namespace) -> int:
    from autoseg.inference.batch_prediction import (
        PredictCommand,
        parse_feature_layers,
        run_prediction,
    )

    report = run_prediction(
        PredictCommand(
            inputs=tuple(args.input),
            output=args.output,
            workspace=None if args.model else workspace_from_args(args),
            model=args.model,
            model_sha256=args.model_sha256,
            config=args.config,
            folds=tuple(args.folds) if args.folds is not None else None,
            checkpoint=args.checkpoint,
            use_mirroring=args.tta,
            step_fraction=args.step_size,
            save_probabilities=args.save_probabilities,
            overwrite=args.overwrite,
            part=args.part,
            device=args.device,
            num_workers=args.num_workers,
            threads=args.threads,
            roi=args.roi,
            feature_layers=parse_feature_layers(args.save_feature_maps),
        )
    )
    print(report.summary())
    return report.exit_code


def add_export_model(p: argparse.ArgumentParser) -> None:
    add_work(p)
    p.add_argument("--out", type=Path, required=True, metavar="ZIP", help="archive to write")
    _add_model_choice(
        p,
        choices=("all", "best", *CANDIDATES),
        default_help="configuration(s) to export (default: all with trained folds)",
    )


def run_export_model(args: argparse.Namespace) -> int:
    from autoseg.inference.model_archive import export_model

    summary = export_model(
        workspace_from_args(args),
        args.out,
        config=args.config,
        folds=tuple(args.folds) if args.folds is not None else None,
        checkpoint=args.checkpoint,
    )
    print(summary.describe())
    return 0
