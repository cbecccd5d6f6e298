"""Shared option types and declarations of the ``autoseg`` subcommands (argparse only)."""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path
from typing import Any, NoReturn

from autoseg.workspace import NUM_FOLDS, Workspace, resolve_work_dir

__all__ = [
    "MAX_SIZE_BYTES",
    "NNUNET_CONFIGURATIONS",
    "FoldsAction",
    "Parser",
    "add_folds",
    "add_num_workers",
    "add_work",
    "configuration_name",
    "fraction",
    "non_negative_float",
    "non_negative_int",
    "parse_folds",
    "parse_size",
    "positive_float",
    "positive_int",
    "workspace_from_args",
]

NNUNET_CONFIGURATIONS: dict[str, str] = {
    "3d_fullres": "unet3d",
    "3d_lowres": "unet3d_lowres",
    "3d_cascade_fullres": "unet3d_cascade",
    "2d": "unet2d",
}
"""nnU-Net v2 configuration names -> autoseg's counterpart."""


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line (``autoseg CMD: error: ...``) and exit 2.

    Abbreviated options are refused (``--epoch`` is not ``--epochs``): a script written
    against one release must not change meaning when a later one adds an option.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        # A value such as -5m or -1GB is a (bad) value, not an unknown option: let the
        # option's type say what is wrong with it instead of "expected one argument".
        self._negative_number_matcher = re.compile(r"^-\.?\d")

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def configuration_name(text: str) -> str:
    """A ``--config`` value, refusing nnU-Net's configuration names with a hint.

    Raises:
        argparse.ArgumentTypeError: for ``3d_fullres`` (did you mean unet3d?), ``2d``
            (unet2d), ``3d_lowres`` (unet3d_lowres) and ``3d_cascade_fullres``
            (unet3d_cascade).
    """
    for name in (part.strip() for part in text.split(",")):
        if name in NNUNET_CONFIGURATIONS:
            counterpart = NNUNET_CONFIGURATIONS[name]
            raise argparse.ArgumentTypeError(
                f"{name!r} is an nnU-Net configuration; did you mean {counterpart!r} (its "
                "autoseg counterpart)?"
            )
    return text


class FoldsAction(argparse.Action):
    """Folds given as one or more values, merged: ``0..4``, ``0,2``, ``0 1 2`` or ``all``
    (each value as :func:`parse_folds` reads it, ``fold=`` prefix allowed). ``num_folds``
    bounds the indices (None: any index, for a user's split of any size)."""

    def __init__(self, *args: Any, num_folds: int | None = NUM_FOLDS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.num_folds = num_folds

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        tokens = [values] if isinstance(values, str) else list(values or [])
        if not tokens:  # a positional with nargs="*" given no value
            setattr(namespace, self.dest, self.default)
            return
        folds: list[int | str] = []
        for token in tokens:
            try:
                parsed = parse_folds(token, self.num_folds)
            except argparse.ArgumentTypeError as err:
                parser.error(f"argument {option_string or self.metavar}: {err}")
            folds.extend(f for f in parsed if f not in folds)
        if "all" in folds and len(folds) > 1:
            parser.error(
                f"argument {option_string or self.metavar}: 'all' trains on every case; "
                "give it alone, not with numbered folds"
            )
        setattr(namespace, self.dest, folds if "all" in folds else sorted(folds, key=int))


def add_folds(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *flags: str,
    help: str,
    metavar: str = "FOLDS",
    default: list[int | str] | None = None,
    nargs: str = "+",
    num_folds: int | None = NUM_FOLDS,
) -> None:
    """A folds option taking one or more values (``--folds 0 1 2``, ``--folds 0..4``);
    ``num_folds=None`` accepts any fold index (the split refuses one it lacks)."""
    parser.add_argument(
        *flags,
        nargs=nargs,
        action=FoldsAction,
        default=default,
        metavar=metavar,
        help=help,
        num_folds=num_folds,
    )


def parse_folds(text: str, num_folds: int | None = NUM_FOLDS) -> list[int | str]:
    """Parse ``fold=0..4``, ``fold=2``, ``fold=0,2``, ``fold=all`` (or the bare value).

    Returns:
        Sorted fold indices, or ``["all"]`` for training on every case.

    Raises:
        argparse.ArgumentTypeError: on anything else, or a fold outside ``0..num_folds-1``
            (no bound when ``num_folds`` is None).
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
    bad = sorted(f for f in folds if num_folds is not None and f >= num_folds)
    if bad and num_folds is not None:
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


MAX_SIZE_BYTES = 10**15
"""Largest memory size accepted (1 PB): beyond it a size is a typo."""


def parse_size(text: str) -> int:
    """Parse a memory size such as ``11GB``, ``11GiB``, ``512MB`` or ``8e9`` into bytes.

    Raises:
        argparse.ArgumentTypeError: if the text is not a size in (0, 1 PB].
    """
    if text.strip().startswith("-"):
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([KMGT]?I?B?)\s*", text.upper())
    if not match or match.group(2) not in _SIZE_UNITS:
        raise argparse.ArgumentTypeError(
            f"invalid size {text!r}; expected e.g. 11GB, 11GiB or 512MB"
        )
    size = float(match.group(1)) * _SIZE_UNITS[match.group(2)]
    if size > MAX_SIZE_BYTES:
        raise argparse.ArgumentTypeError(f"size {text!r} is more than 1 PB; expected e.g. 11GB")
    if int(size) <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return int(size)


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def fraction(text: str) -> float:
    """A number in (0, 1] (a step as a fraction of a patch)."""
    value = _number(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_work(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--work",
        type=Path,
        default=None,
        metavar="DIR",
        help="workspace folder of every artefact (default: $AUTOSEG_WORK, else ./autoseg_work)",
    )


def add_num_workers(parser: argparse.ArgumentParser, what: str, default: int = 2) -> None:
    """The ``-np/--num-workers N`` option (``what`` says what the processes do)."""
    parser.add_argument(
        "-np",
        "--num-workers",
        type=positive_int,
        default=default,
        metavar="N",
        help=f"parallel processes {what} (default: {default})",
    )


def workspace_from_args(args: argparse.Namespace) -> Workspace:
    """The workspace of ``--work`` (or $AUTOSEG_WORK, or ./autoseg_work)."""
    return Workspace(resolve_work_dir(args.work))
