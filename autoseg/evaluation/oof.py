"""Locate and read the out-of-fold predictions that training leaves in the workspace.

For configuration ``<config>`` and fold ``k`` of ``W/splits.json``, each validation case has
``W/results/<config>/fold_<k>/validation/<case>.nii.gz`` (label map in the original
geometry) and ``<case>.npz`` (key ``probabilities``: float16 K×Z×Y×X softmax in the original
geometry). References are the raw dataset's label maps, found through ``W/source.json``.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autoseg.artefacts import read_json
from autoseg.data.dataset import Dataset
from autoseg.data.formats import load_dataset
from autoseg.data.geometry import Geometry
from autoseg.data.imageio import read_image
from autoseg.errors import InputError, PlansError
from autoseg.evaluation.evaluate import as_label_map, find_images
from autoseg.split_file import parse_splits
from autoseg.workspace import FoldPaths, Workspace

__all__ = [
    "OOFCase",
    "load_source_dataset",
    "out_of_fold_cases",
    "read_probabilities",
    "read_reference",
    "read_splits",
    "trained_fold_dirs",
]

_SHOWN = 5  # names listed in a message before "... and N more"


@dataclass(frozen=True)
class OOFCase:
    """One out-of-fold case of one configuration: where its files are.

    Attributes:
        case_id: The case.
        fold: The fold that validated on it.
        prediction: Label map written by training (original geometry).
        probabilities: ``.npz`` softmax written by training (may be absent unless required).
        reference: The raw dataset's label map.
    """

    case_id: str
    fold: int
    prediction: Path
    probabilities: Path
    reference: Path


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" ... and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def read_splits(workspace: Workspace) -> tuple[tuple[str, ...], ...]:
    """The validation case ids of each fold of ``W/splits.json`` (either form, see
    :mod:`autoseg.split_file`).

    Raises:
        InputError: if the file is missing, malformed, or a case validates in two folds.
    """
    path = workspace.splits_json
    data = read_json(path)
    if data is None:
        raise InputError(
            "splits.json missing or not valid JSON; it is written by 'autoseg train'", path=path
        )
    try:
        splits = parse_splits(data, path=path)
    except PlansError as err:
        raise InputError(err.message, path=path) from None
    seen: dict[str, int] = {}
    for index, fold in enumerate(splits.folds):
        for case_id in fold.val:
            if case_id in seen:
                raise InputError(
                    f"case validates in folds {seen[case_id]} and {index}",
                    case_id=case_id,
                    path=path,
                )
            seen[case_id] = index
    return tuple(fold.val for fold in splits.folds)


def load_source_dataset(workspace: Workspace) -> Dataset:
    """The dataset named by ``W/source.json`` (written by ``autoseg plan``).

    Raises:
        PlansError: if source.json is missing or malformed.
        DatasetError: if the dataset cannot be loaded.
    """
    data = read_json(workspace.source_json)
    if not isinstance(data, dict) or not isinstance(data.get("dataset"), str):
        raise PlansError(
            "source.json missing or malformed; run 'autoseg plan DATASET' first",
            path=workspace.source_json,
        )
    return load_dataset(Path(data["dataset"]))


def trained_fold_dirs(workspace: Workspace, config: str) -> list[Path]:
    """Existing ``results/<config>/fold_<k>`` folders (k a number, not ``all``) with a
    ``validation`` folder."""
    return [p for p in workspace.numbered_fold_dirs(config) if FoldPaths(p).validation.is_dir()]


def _fold_spec(folds: Sequence[int]) -> str:
    """``[0, 1, 2, 4]`` -> ``"0..2,4"`` (the ``fold=`` syntax of ``autoseg train``)."""
    runs: list[list[int]] = []
    for fold in folds:
        if runs and fold == runs[-1][-1] + 1:
            runs[-1].append(fold)
        else:
            runs.append([fold])
    return ",".join(f"{r[0]}..{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)


def _missing_message(
    workspace: Workspace, config: str, missing: dict[int, list[str]], num_folds: int
) -> str:
    parts = [
        f"fold {fold}: no validation outputs"
        if names == ["*"]
        else f"fold {fold}: {len(names)} file(s) missing: {_listing(names)}"
        for fold, names in missing.items()
    ]
    npz = any(name.endswith(".npz") for names in missing.values() for name in names)
    why = " (.npz probabilities are needed to ensemble configurations)" if npz else ""
    folds = _fold_spec(sorted(missing))
    command = (
        f"autoseg train --work {shlex.quote(str(workspace.root))} --config "
        f"{shlex.quote(config)} fold={folds}"
    )
    return (
        f"configuration {config!r} lacks validation outputs in {len(missing)} of its "
        f"{num_folds} folds: {'; '.join(parts)}{why}; run '{command}'"
    )


def out_of_fold_cases(
    workspace: Workspace, config: str, *, require_probabilities: bool = False
) -> tuple[OOFCase, ...]:
    """Every validation case of every fold of ``config``, sorted by case id.

    Args:
        workspace: The workspace.
        config: Configuration name (``results/<config>``).
        require_probabilities: Also require each case's ``.npz`` probabilities.

    Raises:
        InputError: naming the folds and cases whose validation outputs are missing (and the
            ``autoseg train`` command that writes them), or a case absent from the dataset.
        PlansError, DatasetError: see :func:`load_source_dataset`.
    """
    val_sets = read_splits(workspace)
    dataset = load_source_dataset(workspace)
    references = {c.case_id: c.label for c in dataset.cases}
    cases: list[OOFCase] = []
    missing: dict[int, list[str]] = {}
    for fold, val in enumerate(val_sets):
        folder = workspace.fold_paths(config, fold).validation
        images = find_images(folder) if folder.is_dir() else {}
        if not images and val:
            missing[fold] = ["*"]
            continue
        lacking = [f"{c}.nii.gz" for c in val if c not in images]
        if require_probabilities:
            lacking += [f"{c}.npz" for c in val if not (folder / f"{c}.npz").is_file()]
        if lacking:
            missing[fold] = lacking
            continue
        for case_id in val:
            reference = references.get(case_id)
            if reference is None:
                raise InputError(
                    f"case of fold {fold} has no labelled case in dataset {dataset.name!r}",
                    case_id=case_id,
                    path=workspace.splits_json,
                )
            npz = folder / f"{case_id}.npz"
            cases.append(OOFCase(case_id, fold, images[case_id], npz, reference))
    if missing:
        raise InputError(
            _missing_message(workspace, config, missing, len(val_sets)),
            path=workspace.config_dir(config),
        )
    return tuple(sorted(cases, key=lambda c: c.case_id))


def read_reference(case: OOFCase) -> tuple[np.ndarray, Geometry]:
    """The reference label map (Z×Y×X, integers) of ``case`` and its geometry."""
    array, geometry = read_image(case.reference)
    return as_label_map(array, case.case_id, case.reference), geometry


def read_probabilities(case: OOFCase, num_classes: int, shape: Sequence[int]) -> np.ndarray:
    """The out-of-fold softmax of ``case`` as float32 K×Z×Y×X.

    Raises:
        InputError: if the file is missing, unreadable, lacks ``probabilities`` or has
            another shape than ``(num_classes, *shape)``.
    """
    path = case.probabilities
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "probabilities" not in npz.files:
                raise InputError(
                    f"no 'probabilities' array (found {npz.files})", case_id=case.case_id, path=path
                )
            probabilities: Any = npz["probabilities"]
    except (OSError, ValueError) as err:
        raise InputError(
            f"cannot read probabilities: {err}", case_id=case.case_id, path=path
        ) from None
    expected = (int(num_classes), *(int(s) for s in shape))
    if tuple(probabilities.shape) != expected:
        raise InputError(
            f"probabilities have shape {tuple(probabilities.shape)}; expected {expected} "
            "(classes x the reference's Z, Y, X)",
            case_id=case.case_id,
            path=path,
        )
    return np.asarray(probabilities, dtype=np.float32)
