"""The ``autoseg`` command line: argparse only.

Each subcommand has an ``_add_<name>`` function declaring its options and a ``_run_<name>``
handler that makes one library call (in ``data_commands``, ``pipeline_commands``,
``predict_commands``, ...); both are registered in :data:`COMMANDS`. Heavy imports (torch,
...) happen inside handlers so ``autoseg --help`` starts fast.

Exit codes: 0 success; 2 usage errors, any :class:`~autoseg.errors.AutosegError` and a full
or read-only disk (one line, no traceback); 1 an unexpected exception (a bug: traceback
printed).
"""

from __future__ import annotations

import argparse
import difflib
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from autoseg import __version__
from autoseg.cli import data_commands as data
from autoseg.cli import folder_commands as folders
from autoseg.cli import pipeline_commands as pipeline
from autoseg.cli import predict_commands as predict
from autoseg.cli import tune_commands as tune
from autoseg.cli import viz_commands as viz
from autoseg.cli.options import Parser, parse_folds, parse_size
from autoseg.errors import AutosegError, ConfigError

__all__ = ["COMMANDS", "Command", "build_parser", "main", "parse_folds", "parse_size"]


@dataclass(frozen=True)
class Command:
    """A subcommand: its one-line help, its option declarations and its handler."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {
    "demo": Command(
        "run the whole pipeline on a built-in phantom dataset", data.add_demo, data.run_demo
    ),
    "demo-data": Command(
        "generate a synthetic phantom dataset (nnU-Net v2 format)",
        data.add_demo_data,
        data.run_demo_data,
    ),
    "verify": Command(
        "check a dataset for everything training would trip on", data.add_verify, data.run_verify
    ),
    "plan": Command(
        "verify, fingerprint, plan and preprocess a dataset", pipeline.add_plan, pipeline.run_plan
    ),
    "train": Command(
        "train the planned configurations on the cross-validation folds",
        pipeline.add_train,
        pipeline.run_train,
    ),
    "find-best": Command(
        "pick the best configuration or ensemble from cross-validation; write best.json",
        pipeline.add_find_best,
        pipeline.run_find_best,
    ),
    "predict": Command(
        "segment new scans with a trained workspace or model archive",
        predict.add_predict,
        predict.run_predict,
    ),
    "ensemble": Command(
        "average the saved probabilities of prediction folders into label maps",
        folders.add_ensemble,
        folders.run_ensemble,
    ),
    "apply-postprocessing": Command(
        "apply find-best's postprocessing (best.json or a rule file) to a folder of label maps",
        folders.add_apply_postprocessing,
        folders.run_apply_postprocessing,
    ),
    "export-model": Command(
        "pack trained models (plans, checkpoints, best.json) into a zip",
        predict.add_export_model,
        predict.run_export_model,
    ),
    "evaluate": Command(
        "score predicted label maps against references (Dice, HD95, NSD, ...)",
        data.add_evaluate,
        data.run_evaluate,
    ),
    "tune": Command(
        "tune the planner heuristics with Optuna (shared study; --show for the best)",
        tune.add_tune,
        tune.run_tune,
    ),
    "show": Command(
        "draw axial, coronal and sagittal slices with prediction/reference outlines (PNG)",
        viz.add_show,
        viz.run_show,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per registered command."""
    parser = Parser(
        prog="autoseg",
        description="Self-configuring 3D medical image segmentation (DeepMedic + 3D U-Net).",
    )
    parser.add_argument("--version", action="version", version=f"autoseg {__version__}")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="more log output")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="warnings only, no bars")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    stamps = parser.add_mutually_exclusive_group()
    stamps.add_argument(
        "--timestamps",
        dest="timestamps",
        action="store_true",
        default=None,
        help="start log lines with the date and time (default: when stderr is not a terminal)",
    )
    stamps.add_argument("--no-timestamps", dest="timestamps", action="store_false")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, command in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(sub_parser)
        sub_parser.set_defaults(handler=command.run)
    return parser


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]  # type: ignore[no-any-return]


def _unrecognized(sub: argparse.ArgumentParser, extras: Sequence[str]) -> str:
    """The subcommand's "unrecognized arguments" message, naming the nearest option."""
    known = [s for a in sub._actions for s in a.option_strings]
    message = f"unrecognized arguments: {' '.join(extras)}"
    for extra in extras:
        if extra.startswith("-"):
            close = difflib.get_close_matches(extra.split("=", 1)[0], known, n=1, cutoff=0.6)
            if close:
                return f"{message}; did you mean {close[0]}?"
    return message


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``; leftovers are the subcommand's error (its own ``--help`` named)."""
    args, extras = parser.parse_known_args(argv)
    if extras:
        if args.command is None:
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
        sub = _subparser(parser, args.command)
        sub.error(_unrecognized(sub, extras))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status (0 ok, 1 bug, 2 usage or input error)."""
    parser = build_parser()
    try:
        args = _parse(parser, argv)
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
        else logging.INFO,
        timestamps=args.timestamps,
    )
    try:
        return int(args.handler(args))
    except AutosegError as err:
        if args.debug:
            traceback.print_exc()
        hint = ""
        message = str(err)
        if isinstance(err, ConfigError) and "--help" not in message and "pass --" not in message:
            hint = f" (see 'autoseg {args.command} --help')"  # options to fix: their help
        print(f"autoseg: error: {message}{hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("autoseg: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        from autoseg.atomic import STORAGE_ERRNOS, storage_error

        if isinstance(err, OSError) and err.errno in STORAGE_ERRNOS and err.filename:
            # a full or read-only disk outside autoseg's own writers: still one line
            if args.debug:
                traceback.print_exc()
            print(f"autoseg: error: {storage_error(err, err.filename)}", file=sys.stderr)
            return 2
        traceback.print_exc()
        print("autoseg: internal error (a bug): please report the traceback above", file=sys.stderr)
        return 1
