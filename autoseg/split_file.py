"""``splits.json``: the folds of cross-validation, as autoseg writes them or a user gives them.

One reader for everything that uses the folds (training, CV summaries, find-best). Two forms:

- autoseg's: ``{"schema_version": 1, "num_folds": 5, "seed": 12345, "folds": [{"train":
  [...], "val": [...]}, ...], "inputs": {"cases": "<digest>"}}``;
- nnU-Net's ``splits_final.json``: a list of ``{"train": [...], "val": [...]}``.

Any number of folds (one train/validation fold included); ``train`` may be left out, and
then holds every training case outside the fold's ``val``. A user's file is honoured as
given (:func:`check_splits`): a case in two validation sets, in both sets of a fold, or not
a training case of the dataset is refused. Cases outside every validation set are allowed:
they are always training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoseg.errors import ConfigError, PlansError

__all__ = ["SPLITS_KEYS", "Fold", "Splits", "check_splits", "parse_splits"]

SPLITS_KEYS = ("schema_version", "num_folds", "seed", "folds", "inputs")
"""Keys of autoseg's form of splits.json (every one optional but ``folds``)."""
_FOLD_KEYS = ("train", "val")
_SHOWN = 5


@dataclass(frozen=True)
class Fold:
    """Case ids of one fold's training and validation sets."""

    train: tuple[str, ...]
    val: tuple[str, ...]


@dataclass(frozen=True)
class Splits:
    """The folds of cross-validation (``splits.json``).

    Attributes:
        num_folds: Number of folds.
        seed: Seed the split was made with (0 for a user's split).
        folds: Training and validation cases of each fold; a fold given without ``train``
            gets an empty tuple here until :func:`check_splits` fills it in.
        inputs: ``{"cases": digest}`` for a split autoseg made (empty for a user's split).
    """

    num_folds: int
    seed: int
    folds: tuple[Fold, ...]
    inputs: Mapping[str, str] = field(default_factory=dict)

    @property
    def made_by_autoseg(self) -> bool:
        """True for a split autoseg made (it records the cases it was made for)."""
        return "cases" in self.inputs

    def fold(self, fold: int | str) -> Fold:
        """Training and validation cases of ``fold`` (an index, or "all": every case in both).

        Raises:
            ConfigError: if the fold index is out of range.
        """
        if fold == "all":
            every = tuple(sorted({c for f in self.folds for c in f.train + f.val}))
            return Fold(every, every)
        if not isinstance(fold, int) or not 0 <= fold < self.num_folds:
            raise ConfigError(f"fold {fold!r} out of range; folds are 0..{self.num_folds - 1}")
        return self.folds[fold]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "num_folds": self.num_folds,
            "seed": self.seed,
            "folds": [{"train": list(f.train), "val": list(f.val)} for f in self.folds],
            "inputs": dict(self.inputs),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Splits:
        """Parse ``splits.json`` content (see :func:`parse_splits`)."""
        return parse_splits(data)


def _names(raw: object, what: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(c, str) and c for c in raw):
        raise PlansError(f"{what} must be a list of case ids, got {raw!r:.80}")
    repeated = sorted({c for c in raw if raw.count(c) > 1})
    if repeated:
        raise PlansError(f"{what} lists {_listing(repeated)} twice")
    return tuple(raw)


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_SHOWN])
    return shown + (f" ... and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def parse_splits(data: Any, *, path: Path | None = None) -> Splits:
    """Read either form of splits.json (see the module docstring); nothing is checked
    against the dataset yet.

    Raises:
        PlansError: naming ``path``, for a malformed file (unknown keys, a fold without a
            ``val`` list, ``num_folds`` disagreeing with the folds listed).
    """
    try:
        return _parse(data)
    except PlansError as err:
        raise PlansError(err.message, path=path) from None


def _parse(data: Any) -> Splits:
    raw_folds, seed, inputs = data, 0, {}
    if isinstance(data, dict):
        unknown = sorted(set(data) - set(SPLITS_KEYS))
        if unknown or "folds" not in data:
            raise PlansError(
                f"splits.json has unknown keys {unknown} or no 'folds'; expected keys: "
                f"{', '.join(SPLITS_KEYS)} (or a list of {{'train': [...], 'val': [...]}} "
                "as nnU-Net's splits_final.json)"
            )
        raw_folds = data["folds"]
        seed = data.get("seed", 0)
        inputs = data.get("inputs", {})
        if not isinstance(seed, int) or not isinstance(inputs, dict):
            raise PlansError("splits.json: 'seed' must be an integer and 'inputs' an object")
    if not isinstance(raw_folds, list) or not raw_folds:
        raise PlansError(
            "splits.json must list at least one fold: [{'train': [...], 'val': [...]}, ...]"
        )
    folds = []
    for index, raw in enumerate(raw_folds):
        if not isinstance(raw, dict) or "val" not in raw or set(raw) - set(_FOLD_KEYS):
            raise PlansError(
                f"fold {index} must be an object with a 'val' list and an optional 'train' "
                f"list, got {raw!r:.80}"
            )
        val = _names(raw["val"], f"fold {index} 'val'")
        if not val:
            raise PlansError(f"fold {index} has no validation case")
        train = _names(raw["train"], f"fold {index} 'train'") if "train" in raw else ()
        folds.append(Fold(train, val))
    if isinstance(data, dict) and data.get("num_folds", len(folds)) != len(folds):
        raise PlansError(f"num_folds {data['num_folds']!r} != {len(folds)} folds listed")
    return Splits(len(folds), seed, tuple(folds), {str(k): str(v) for k, v in inputs.items()})


def check_splits(splits: Splits, case_ids: Sequence[str], *, path: Path | None = None) -> Splits:
    """``splits`` checked against the dataset's training cases, each fold's ``train`` filled
    in where it was left out (every case outside the fold's ``val``).

    Raises:
        PlansError: naming ``path``, when a case validates in two folds, is in both sets of
            one fold, or is not a training case of the dataset.
    """
    known = set(case_ids)
    seen: dict[str, int] = {}
    folds = []
    for index, fold in enumerate(splits.folds):
        for case_id in fold.val:
            if case_id in seen:
                raise PlansError(
                    f"case {case_id!r} validates in folds {seen[case_id]} and {index}; a case "
                    "may validate in one fold only",
                    path=path,
                )
            seen[case_id] = index
        both = sorted(set(fold.train) & set(fold.val))
        if both:
            raise PlansError(
                f"fold {index} trains and validates on {_listing(both)}; a case is in one of "
                "'train' and 'val'",
                path=path,
            )
        unknown = sorted((set(fold.train) | set(fold.val)) - known)
        if unknown:
            raise PlansError(
                f"fold {index} names {len(unknown)} case(s) that are not training cases of the "
                f"dataset: {_listing(unknown)}",
                path=path,
            )
        held_out = set(fold.val)
        train = fold.train or tuple(sorted(c for c in case_ids if c not in held_out))
        folds.append(Fold(train, fold.val))
    return Splits(splits.num_folds, splits.seed, tuple(folds), splits.inputs)
