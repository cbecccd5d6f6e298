"""Deterministic k-fold splits of the training cases, grouped by patient and stratified by class.

Cases of one group (a patient scanned several times: the ``group`` of each case, from a
manifest's ``patient``/``group`` column or dataset.json's grouping entry) always land in the
same fold. Groups are placed one at a time, those holding the rarest classes first, each into
one of the currently smallest folds, preferring the fold that holds the fewest of the group's
classes so far (ties broken by a seeded draw). A class present in at least ``k`` groups is
therefore in every fold's validation set, and fold sizes differ by at most the largest group.

``splits.json`` is written once and reused (a hand-edited file is respected) as long as it
covers exactly the current training cases; otherwise it is rebuilt with a warning.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autoseg.artefacts import text_digest
from autoseg.atomic import atomic_write_json
from autoseg.errors import ConfigError, DatasetError, PlansError
from autoseg.log import get_logger
from autoseg.workspace import NUM_FOLDS

__all__ = [
    "SPLIT_SEED",
    "Fold",
    "Splits",
    "load_or_make_splits",
    "make_splits",
]

SPLIT_SEED = 12345
"""Seed of the split (independent of the training seed, so every fold sees the same split)."""
_log = get_logger(__name__)


@dataclass(frozen=True)
class Fold:
    """Case ids of one fold's training and validation sets."""

    train: tuple[str, ...]
    val: tuple[str, ...]


@dataclass(frozen=True)
class Splits:
    """A k-fold split of the training cases (``splits.json``)."""

    num_folds: int
    seed: int
    folds: tuple[Fold, ...]
    inputs: Mapping[str, str]

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
        """Parse ``splits.json`` content.

        Raises:
            PlansError: if the content is malformed.
        """
        try:
            folds = tuple(
                Fold(tuple(str(c) for c in f["train"]), tuple(str(c) for c in f["val"]))
                for f in data["folds"]
            )
            return cls(int(data["num_folds"]), int(data["seed"]), folds, dict(data["inputs"]))
        except (KeyError, TypeError, ValueError) as err:
            raise PlansError(
                f"splits.json is malformed ({type(err).__name__}: {err}); expected keys "
                "num_folds, seed, folds ([{train, val}, ...]), inputs"
            ) from None


def _cases_digest(case_ids: Sequence[str], groups: Mapping[str, str | None]) -> str:
    return text_digest(json.dumps(sorted([c, groups.get(c)] for c in case_ids)))


def make_splits(
    case_ids: Sequence[str],
    *,
    groups: Mapping[str, str | None] | None = None,
    classes: Mapping[str, Sequence[int]] | None = None,
    num_folds: int = NUM_FOLDS,
    seed: int = SPLIT_SEED,
) -> Splits:
    """Split cases into ``num_folds`` folds (grouped, class-stratified; see the module doc).

    Args:
        case_ids: Training case ids.
        groups: Case id -> group id (None: the case is its own group).
        classes: Case id -> foreground label values present in the case.
        num_folds: Number of folds, >= 2.
        seed: Seed of the tie-breaking draws.

    Raises:
        DatasetError: if there are fewer groups than folds.
    """
    groups, classes = groups or {}, classes or {}
    members: dict[str, list[str]] = {}
    for case in sorted(case_ids):
        members.setdefault(groups.get(case) or f"case:{case}", []).append(case)
    if len(members) < num_folds:
        raise DatasetError(
            f"{num_folds}-fold cross-validation needs at least {num_folds} cases (patient "
            f"groups), found {len(members)}; train with fold=all instead"
        )
    unit_classes = {g: {int(v) for c in m for v in classes.get(c, ())} for g, m in members.items()}
    frequency: dict[int, int] = {}
    for values in unit_classes.values():
        for v in values:
            frequency[v] = frequency.get(v, 0) + 1
    rng = np.random.default_rng(seed)
    order = [list(members)[i] for i in rng.permutation(len(members))]
    order.sort(key=lambda g: (min((frequency[v] for v in unit_classes[g]), default=10**9),))
    sizes = np.zeros(num_folds, dtype=np.int64)
    counts: dict[int, np.ndarray] = {v: np.zeros(num_folds) for v in frequency}
    assignment: dict[str, int] = {}
    for unit in order:
        smallest = np.flatnonzero(sizes == sizes.min())
        cost = np.zeros(len(smallest))
        for v in unit_classes[unit]:
            cost += counts[v][smallest] / frequency[v]
        best = smallest[np.flatnonzero(cost == cost.min())]
        fold = int(rng.choice(best))
        assignment[unit] = fold
        sizes[fold] += len(members[unit])
        for v in unit_classes[unit]:
            counts[v][fold] += 1
    folds = []
    for k in range(num_folds):
        val = sorted(c for g, m in members.items() if assignment[g] == k for c in m)
        held_out = set(val)
        train = sorted(c for c in case_ids if c not in held_out)
        folds.append(Fold(tuple(train), tuple(val)))
    return Splits(num_folds, seed, tuple(folds), {"cases": _cases_digest(case_ids, groups)})


def load_or_make_splits(
    path: Path,
    case_ids: Sequence[str],
    *,
    groups: Mapping[str, str | None] | None = None,
    classes: Mapping[str, Sequence[int]] | None = None,
    num_folds: int = NUM_FOLDS,
) -> Splits:
    """Reuse ``path`` (splits.json) when it covers exactly ``case_ids``; else make and save one.

    Raises:
        PlansError: if an existing splits.json is not valid JSON or malformed.
        DatasetError: as :func:`make_splits`.
    """
    if path.is_file():
        try:
            existing = Splits.from_dict(json.loads(path.read_text()))
        except json.JSONDecodeError as err:
            raise PlansError(f"splits.json is not valid JSON: {err}", path=path) from None
        except PlansError as err:
            raise PlansError(err.message, path=path) from None
        covered = {c for f in existing.folds for c in f.val}
        if covered == set(case_ids) and all(
            set(f.train) | set(f.val) == set(case_ids) for f in existing.folds
        ):
            return existing
        _log.warning(
            "%s does not cover the current %d training cases; making a new split",
            path,
            len(case_ids),
        )
    splits = make_splits(case_ids, groups=groups, classes=classes, num_folds=num_folds)
    atomic_write_json(path, splits.to_dict())
    _log.info("wrote a %d-fold split of %d cases to %s", num_folds, len(case_ids), path)
    return splits
