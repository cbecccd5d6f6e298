"""Deterministic k-fold splits of the training cases, grouped by patient and stratified by class.

Cases of one group (a patient scanned several times: the ``group`` of each case, from a
manifest's ``patient``/``group`` column or dataset.json's grouping entry) always land in the
same fold. Groups are placed one at a time, those holding the rarest classes first, each into
one of the currently smallest folds, preferring the fold that holds the fewest of the group's
classes so far (ties broken by a seeded draw). A class present in at least ``k`` groups is
therefore in every fold's validation set, and fold sizes differ by at most the largest group.

``splits.json`` is written once and reused. A split autoseg made is rebuilt (with a warning)
when the training cases change; any other splits.json (written or edited by hand, nnU-Net's
``splits_final.json``, DeepMedic's validation lists) is honoured as given, with any number of
folds, after :func:`autoseg.split_file.check_splits`. Without a splits.json, a dataset that
brings its own validation sets (DeepMedic lists) gets them as fixed folds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from autoseg.artefacts import text_digest
from autoseg.atomic import atomic_write_json
from autoseg.errors import DatasetError, PlansError
from autoseg.log import get_logger
from autoseg.split_file import Fold, Splits, check_splits, parse_splits
from autoseg.strict import load_json
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
    fixed: Sequence[Sequence[str]] = (),
) -> Splits:
    """The split in ``path`` (splits.json) if there is one, else a new one, saved there.

    Args:
        path: ``W/splits.json``.
        case_ids: The dataset's training cases.
        groups: Case id -> group id, for a new split.
        classes: Case id -> label values present, for a new split.
        num_folds: Folds of a new split.
        fixed: Validation sets the dataset brings (DeepMedic's validation lists): without a
            splits.json, they become the folds (each fold training on every other case).

    Returns:
        An existing split autoseg made for these cases and groups, or any splits.json autoseg
        did not make, as given (checked, every fold's ``train`` filled in); else a new split
        (rebuilt with a warning over a split autoseg made for other cases).

    Raises:
        PlansError: if an existing splits.json is not valid JSON, is malformed, or names
            unknown or overlapping cases.
        DatasetError: as :func:`make_splits`.
    """
    if path.is_file():
        try:
            existing = parse_splits(load_json(path.read_text()), path=path)
        except json.JSONDecodeError as err:
            raise PlansError(f"splits.json is not valid JSON: {err}", path=path) from None
        current = existing.inputs.get("cases") == _cases_digest(case_ids, groups or {})
        if not existing.made_by_autoseg or current:
            return check_splits(existing, case_ids, path=path)
        _log.warning(
            "%s was made for other training cases than the current %d; making a new split",
            path,
            len(case_ids),
        )
    if fixed:
        folds = tuple(Fold((), tuple(val)) for val in fixed)
        splits = check_splits(Splits(len(folds), 0, folds), case_ids, path=path)
        atomic_write_json(path, {**splits.to_dict(), "inputs": {}})
        _log.info(
            "wrote the dataset's %d fixed validation fold(s) (%s validation cases) to %s",
            len(folds),
            "+".join(str(len(f.val)) for f in folds),
            path,
        )
        return splits
    splits = make_splits(case_ids, groups=groups, classes=classes, num_folds=num_folds)
    atomic_write_json(path, splits.to_dict())
    _log.info("wrote a %d-fold split of %d cases to %s", num_folds, len(case_ids), path)
    return splits
