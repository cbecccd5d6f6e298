"""The ``autoseg`` command line: argparse only.

Each subcommand has an ``_add_<name>`` function declaring its options and a ``_run_<name>``
handler that makes one library call; both are registered in :data:`COMMANDS`. Heavy imports
(torch, ...) happen inside handlers so ``autoseg --help`` starts fast.

Exit codes: 0 success; 2 usage errors and any :class:`~autoseg.errors.AutosegError` (one
line, no traceback); 1 an unexpected exception (a bug: traceback printed).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from autoseg import __version__
from autoseg.errors import AutosegError

__all__ = ["COMMANDS", "main", "parse_folds", "parse_size"]


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line (``autoseg CMD: error: ...``) and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# --------------------------------------------------------------------------- value parsers


def parse_folds(text: str, num_folds: int = 5) -> list[int | str]:
    """Parse ``fold=0..4``, ``fold=2``, ``fold=0,2``, ``fold=all`` (or the bare value).

    Returns:
        Sorted fold indices, or ``["all"]`` for training on every case.

    Raises:
        argparse.ArgumentTypeError: on anything else, or a fold outside ``0..num_folds-1``.
    """
    value = text.strip()
    if value.startswith("fold="):
        value = value[len("fold=") :]
    if value == "all":
        return ["all"]
    folds: set[int] = set()
    for part in value.split(","):
        match = re.fullmatch(r"(\d+)(?:\.\.(\d+))?", part.strip())
        if not match:
            raise argparse.ArgumentTypeError(
                f"invalid fold {text!r}; expected fold=K, fold=A..B, fold=A,B or fold=all"
            )
        start = int(match.group(1))
        stop = int(match.group(2)) if match.group(2) is not None else start
        if stop < start:
            raise argparse.ArgumentTypeError(f"invalid fold range {part!r}: {start=} > {stop=}")
        folds.update(range(start, stop + 1))
    bad = sorted(f for f in folds if f >= num_folds)
    if bad:
        raise argparse.ArgumentTypeError(
            f"fold {bad[0]} out of range; folds are 0..{num_folds - 1} (or 'all')"
        )
    return sorted(folds)


_SIZE_UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}


def parse_size(text: str) -> int:
    """Parse a memory size such as ``11GB``, ``11GiB``, ``512MB`` or ``8e9`` into bytes.

    Raises:
        argparse.ArgumentTypeError: if the text is not a positive size.
    """
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([KMGT]?I?B?)\s*", text.upper())
    if not match or match.group(2) not in _SIZE_UNITS:
        raise argparse.ArgumentTypeError(
            f"invalid size {text!r}; expected e.g. 11GB, 11GiB or 512MB"
        )
    size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
    if size <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return size


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _add_work(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--work",
        type=Path,
        default=None,
        metavar="DIR",
        help="workspace folder of every artefact (default: $AUTOSEG_WORK, else ./autoseg_work)",
    )


def _workspace(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from autoseg.workspace import Workspace, resolve_work_dir

    return Workspace(resolve_work_dir(args.work))


# --------------------------------------------------------------------------- commands


def _add_verify(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "dataset", type=Path, help="dataset folder (nnU-Net v2 raw or MSD) or CSV manifest"
    )
    p.add_argument("--json", action="store_true", help="print a machine-readable JSON report")
    p.add_argument(
        "-np",
        "--num-workers",
        type=_positive_int,
        default=2,
        metavar="N",
        help="parallel processes reading images (default: 2)",
    )


def _run_verify(args: argparse.Namespace) -> int:
    from autoseg.data.verify import run_verify_command

    return run_verify_command(args.dataset, as_json=args.json, num_workers=args.num_workers)


def _add_demo_data(p: argparse.ArgumentParser) -> None:
    from autoseg.data.synthetic import add_generator_arguments

    p.add_argument("out", type=Path, help="folder to write the dataset into (nnU-Net v2 format)")
    add_generator_arguments(p)


def _run_demo_data(args: argparse.Namespace) -> int:
    from autoseg.data.synthetic import generate_from_args

    return generate_from_args(args)


def _add_demo(p: argparse.ArgumentParser) -> None:
    _add_work(p)
    p.add_argument("--quick", action="store_true", help="a ~2 minute version (used by tests)")
    p.add_argument("--seed", type=int, default=0, help="seed of the phantom generator and training")


def _run_demo(args: argparse.Namespace) -> int:
    from autoseg.demo import run_demo

    return run_demo(_workspace(args), quick=args.quick, seed=args.seed)


def _add_evaluate(p: argparse.ArgumentParser) -> None:
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
    p.add_argument(
        "-np",
        "--num-workers",
        type=_positive_int,
        default=2,
        metavar="N",
        help="parallel processes scoring cases (default: 2)",
    )


def _run_evaluate(args: argparse.Namespace) -> int:
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


def _add_plan(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "dataset", type=Path, help="dataset folder (nnU-Net v2 raw or MSD) or CSV manifest"
    )
    _add_work(p)
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
    p.add_argument(
        "-np",
        "--num-workers",
        type=_positive_int,
        default=2,
        metavar="N",
        help="parallel processes for fingerprinting and preprocessing (default: 2)",
    )


def _run_plan(args: argparse.Namespace) -> int:
    from autoseg.planner.run import run_plan
    from autoseg.planner.summary import format_plan_summary

    report = run_plan(
        args.dataset,
        _workspace(args),
        heuristics_path=args.heuristics,
        device=args.device,
        gpu_memory_bytes=args.gpu_memory,
        num_workers=args.num_workers,
    )
    print(format_plan_summary(report))
    return 0


def _add_find_best(p: argparse.ArgumentParser) -> None:
    _add_work(p)
    p.add_argument(
        "--configs",
        nargs="+",
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
        type=_positive_int,
        default=2000,
        metavar="N",
        help="bootstrap resamples of the confidence intervals (default: 2000)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default: 0)")
    p.add_argument(
        "-np",
        "--num-workers",
        type=_positive_int,
        default=2,
        metavar="N",
        help="parallel processes scoring cases (default: 2)",
    )


def _run_find_best(args: argparse.Namespace) -> int:
    from autoseg.ensembling import find_best, format_best_choice

    choice = find_best(
        _workspace(args),
        args.configs,
        metric=args.metric,
        num_bootstrap=args.bootstrap,
        seed=args.seed,
        num_workers=args.num_workers,
    )
    print(format_best_choice(choice))
    return 0


def _add_model_choice(
    p: argparse.ArgumentParser, *, choices: tuple[str, ...], default_help: str
) -> None:
    p.add_argument("--config", choices=choices, default=None, help=default_help)
    p.add_argument(
        "--folds",
        type=parse_folds,
        default=None,
        metavar="FOLDS",
        help="folds to use: 0..4, 0,2, 3 or all (default: every trained fold, or best.json's)",
    )
    p.add_argument(
        "--checkpoint",
        choices=("final", "best", "latest"),
        default="final",
        help="which checkpoint of each fold (default: final)",
    )


def _add_predict(p: argparse.ArgumentParser) -> None:
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
    _add_model_choice(
        p,
        choices=("best", "unet3d", "deepmedic"),
        default_help="configuration, or best = find-best's choice (default: best when "
        "best.json exists, else the only trained configuration)",
    )
    p.add_argument("--no-tta", action="store_true", help="no test-time mirroring")
    p.add_argument(
        "--step-size",
        type=float,
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
        type=_positive_int,
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


def _run_predict(args: argparse.Namespace) -> int:
    from autoseg.inference.run import PredictCommand, parse_feature_layers, run_prediction

    report = run_prediction(
        PredictCommand(
            inputs=tuple(args.input),
            output=args.output,
            workspace=None if args.model else _workspace(args),
            model=args.model,
            config=args.config,
            folds=tuple(args.folds) if args.folds is not None else None,
            checkpoint=args.checkpoint,
            use_mirroring=not args.no_tta,
            step_fraction=args.step_size,
            save_probabilities=args.save_probabilities,
            overwrite=args.overwrite,
            device=args.device,
            num_workers=args.num_workers,
            threads=args.threads,
            roi=args.roi,
            feature_layers=parse_feature_layers(args.save_feature_maps),
        )
    )
    print(report.summary())
    return report.exit_code


def _add_export_model(p: argparse.ArgumentParser) -> None:
    _add_work(p)
    p.add_argument("--out", type=Path, required=True, metavar="ZIP", help="archive to write")
    _add_model_choice(
        p,
        choices=("all", "best", "unet3d", "deepmedic"),
        default_help="configuration(s) to export (default: all with trained folds)",
    )


def _run_export_model(args: argparse.Namespace) -> int:
    from autoseg.inference.model_archive import export_model

    summary = export_model(
        _workspace(args),
        args.out,
        config=args.config,
        folds=tuple(args.folds) if args.folds is not None else None,
        checkpoint=args.checkpoint,
    )
    print(summary.describe())
    return 0


def _add_train(p: argparse.ArgumentParser) -> None:
    from autoseg.trainers.cli_args import add_train_arguments

    p.add_argument(
        "folds",
        nargs="?",
        type=parse_folds,
        default=None,
        metavar="fold=FOLDS",
        help="folds to train: fold=0..4 (default), fold=2, fold=0,2 or fold=all (every case)",
    )
    p.add_argument("--fold", type=parse_folds, default=None, metavar="K", help="same as fold=K")
    _add_work(p)
    add_train_arguments(p)


def _run_train(args: argparse.Namespace) -> int:
    from autoseg.errors import ConfigError
    from autoseg.trainers.cli_args import request_from_args
    from autoseg.trainers.run import format_results, run_training

    if args.folds is not None and args.fold is not None:
        raise ConfigError("give the folds once: fold=FOLDS or --fold K, not both")
    folds = args.folds or args.fold or list(range(5))
    results = run_training(_workspace(args), request_from_args(args, folds))
    print(format_results(results))
    return 0


@dataclass(frozen=True)
class Command:
    """A subcommand: its one-line help, its option declarations and its handler."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {
    "demo": Command("run the whole pipeline on a built-in phantom dataset", _add_demo, _run_demo),
    "demo-data": Command(
        "generate a synthetic phantom dataset (nnU-Net v2 format)", _add_demo_data, _run_demo_data
    ),
    "plan": Command("verify, fingerprint, plan and preprocess a dataset", _add_plan, _run_plan),
    "train": Command(
        "train the planned configurations on the cross-validation folds", _add_train, _run_train
    ),
    "verify": Command(
        "check a dataset for everything training would trip on", _add_verify, _run_verify
    ),
    "find-best": Command(
        "pick the best configuration or ensemble from cross-validation; write best.json",
        _add_find_best,
        _run_find_best,
    ),
    "evaluate": Command(
        "score predicted label maps against references (Dice, HD95, NSD, ...)",
        _add_evaluate,
        _run_evaluate,
    ),
    "predict": Command(
        "segment new scans with a trained workspace or model archive", _add_predict, _run_predict
    ),
    "export-model": Command(
        "pack trained models (plans, checkpoints, best.json) into a zip",
        _add_export_model,
        _run_export_model,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per registered command."""
    parser = _Parser(
        prog="autoseg",
        description="Self-configuring 3D medical image segmentation (DeepMedic + 3D U-Net).",
    )
    parser.add_argument("--version", action="version", version=f"autoseg {__version__}")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="more log output")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="warnings only, no bars")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, command in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(sub_parser)
        sub_parser.set_defaults(handler=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status (0 ok, 1 bug, 2 usage or input error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    if args.command is None:
        parser.print_help()
        return 2
    from autoseg.log import set_verbosity

    set_verbosity(
        logging.DEBUG
        if args.verbose or args.debug
        else logging.WARNING
        if args.quiet
        else logging.INFO
    )
    try:
        return int(args.handler(args))
    except AutosegError as err:
        if args.debug:
            traceback.print_exc()
        print(f"autoseg: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("autoseg: interrupted", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print("autoseg: internal error (a bug): please report the traceback above", file=sys.stderr)
        return 1
