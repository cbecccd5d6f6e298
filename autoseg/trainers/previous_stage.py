"""The cascade's training input: the first stage's out-of-fold segmentation of every case.

A cascade configuration (``ConfigurationPlan.previous_stage``) trains on the low-resolution
stage's *cross-validation* predictions, as nnU-Net does: each case's first-stage label map
comes from the fold of the first stage where that case was a validation case
(``results/<stage>/fold_<k>/validation/<case>.nii.gz``), i.e. from a model that never saw it
in training. Every fold of the cascade (and ``fold=all``) uses the same per-case inputs,
since every case has exactly one such prediction under the split.

:func:`prepare_previous_stage` checks that every fold of the first stage the cases need has
finished its final validation (else a :class:`~autoseg.errors.ConfigError` says which folds
to train first), then brings each prediction onto the cascade's preprocessed grid
(:func:`autoseg.inference.cascade.stage_on_grid`) into ``results/<cascade>/previous_stage/``:
``<case>.npy`` (uint8 Z×Y×X) and ``<case>.json`` (the digest of the source prediction and
of the preprocessing it was brought onto), skipped when current.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from autoseg.artefacts import files_digest, is_current
from autoseg.atomic import atomic_save_npy, atomic_write_json
from autoseg.data.imageio import read_image
from autoseg.errors import ConfigError
from autoseg.inference.cascade import stage_on_grid
from autoseg.log import get_logger
from autoseg.planner.plans import Plans, preprocessing_settings
from autoseg.preprocessing.store import load_preprocessed_case
from autoseg.split_file import Splits
from autoseg.trainers.validation import VALIDATION_ENDING
from autoseg.workspace import Workspace

__all__ = [
    "load_stage_labels",
    "missing_stage_folds",
    "out_of_fold_sources",
    "prepare_previous_stage",
    "stage_folds_error",
]

_log = get_logger(__name__)


def _validation_fold_of(
    workspace: Workspace, stage: str, splits: Splits, case_ids: Sequence[str], cascade: str
) -> dict[str, int]:
    fold_of = {c: k for k in range(splits.num_folds) for c in splits.fold(k).val}
    never = sorted(c for c in case_ids if c not in fold_of)
    if never:
        raise ConfigError(
            f"{cascade} trains on {stage}'s out-of-fold predictions, but "
            f"{len(never)} case(s) are in no validation fold of splits.json "
            f"({', '.join(never[:5])}{', ...' if len(never) > 5 else ''}); use a split whose "
            "validation folds cover every case",
            path=workspace.splits_json,
        )
    return fold_of


def missing_stage_folds(
    workspace: Workspace,
    stage: str,
    splits: Splits,
    case_ids: Sequence[str],
    cascade: str,
    coming: Sequence[int] = (),
) -> list[int]:
    """Folds of ``stage`` that ``case_ids`` need and that have no final validation yet
    (leaving out the ``coming`` folds, which this run trains first).

    Raises:
        ConfigError: for cases that are in no validation fold of the split.
    """
    fold_of = _validation_fold_of(workspace, stage, splits, case_ids, cascade)
    needed = sorted({fold_of[c] for c in case_ids})
    summary = "summary.json"
    return [
        k
        for k in needed
        if k not in coming and not (workspace.fold_paths(stage, k).validation / summary).is_file()
    ]


def stage_folds_error(stage: str, cascade: str, missing: Sequence[int]) -> ConfigError:
    """The message that ``cascade`` cannot train before folds ``missing`` of ``stage``."""
    folds = ",".join(str(k) for k in missing)
    return ConfigError(
        f"{cascade} trains on {stage}'s out-of-fold predictions: fold(s) {folds} of {stage} "
        f"have no final validation yet; train them first ('autoseg train --config {stage} "
        f"fold={folds}', or --config all, which trains {stage} before {cascade})"
    )


def out_of_fold_sources(
    workspace: Workspace, stage: str, splits: Splits, case_ids: Sequence[str], cascade: str
) -> dict[str, Path]:
    """Case -> the first-stage prediction of the fold where it was a validation case.

    Raises:
        ConfigError: naming the folds of ``stage`` to train first, or the cases that are in
            no validation fold of the split (no out-of-fold prediction can exist for them).
    """
    missing = missing_stage_folds(workspace, stage, splits, case_ids, cascade)
    if missing:
        raise stage_folds_error(stage, cascade, missing)
    fold_of = _validation_fold_of(workspace, stage, splits, case_ids, cascade)
    sources = {}
    for case_id in case_ids:
        path = workspace.fold_paths(stage, fold_of[case_id]).validation / (
            case_id + VALIDATION_ENDING
        )
        if not path.is_file():
            raise ConfigError(
                f"{stage} fold {fold_of[case_id]} has no validation output of {case_id}; "
                f"re-train it ('autoseg train --config {stage} fold={fold_of[case_id]} "
                "--overwrite')",
                case_id=case_id,
                path=path,
            )
        sources[case_id] = path
    return sources


def prepare_previous_stage(
    workspace: Workspace, plans: Plans, cascade: str, splits: Splits, case_ids: Sequence[str]
) -> Path:
    """Bring every case's out-of-fold first-stage prediction onto the cascade's grid.

    Returns:
        The folder of the per-case inputs (``Workspace.stage_dir``).

    Raises:
        ConfigError: see :func:`out_of_fold_sources`; or when ``cascade`` has no first stage.
    """
    plan = plans.configuration(cascade)
    if plan.previous_stage is None:
        raise ConfigError(f"configuration {cascade!r} is no cascade (it has no previous stage)")
    sources = out_of_fold_sources(workspace, plan.previous_stage, splits, case_ids, cascade)
    settings = preprocessing_settings(plans, cascade)
    data_dir = workspace.preprocessed_dir(plan.data_identifier)
    out = workspace.stage_dir(cascade)
    out.mkdir(parents=True, exist_ok=True)
    made = 0
    for case_id, source in sources.items():
        inputs = {"prediction": files_digest([source]), "preprocessing": settings.digest()}
        record = out / f"{case_id}.json"
        if is_current(record, inputs) and (out / f"{case_id}.npy").is_file():
            continue
        properties = load_preprocessed_case(data_dir, case_id).properties
        labels = stage_on_grid(
            np.rint(read_image(source)[0]).astype(np.int64),
            properties,
            anisotropy_threshold=plans.heuristics.anisotropy_threshold,
        )
        atomic_save_npy(out / f"{case_id}.npy", labels)
        atomic_write_json(record, {"schema_version": 1, "source": str(source), "inputs": inputs})
        made += 1
    _log.info(
        "%s: %s's out-of-fold predictions of %d case(s) ready (%d new) in %s",
        cascade,
        plan.previous_stage,
        len(sources),
        made,
        out,
    )
    return out


def load_stage_labels(folder: Path, case_id: str, *, mmap: bool = True) -> np.ndarray:
    """The first-stage label map of a case on the cascade's grid (memory-mapped)."""
    return np.load(folder / f"{case_id}.npy", mmap_mode="r" if mmap else None, allow_pickle=False)
