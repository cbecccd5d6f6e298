"""Evaluate a folder of predicted label maps against a folder of references.

Files are matched by case id, the file name without its image ending
(``case_001.nii.gz`` -> ``case_001``); other files (``.npz`` probabilities, CSV, JSON, hidden
temporary files) are ignored. Every prediction needs a reference and every reference a
prediction. Spacing comes from the reference; the prediction must share its geometry.

Outputs: a per-case table (one row per case x label/region, see
:func:`autoseg.evaluation.metrics.compute_case_metrics`), written as ``metrics.csv``, and a
summary (:func:`autoseg.evaluation.summary.summarize`) written as ``summary.json``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from autoseg.atomic import atomic_write_json, atomic_write_text, check_writable
from autoseg.data.header_checks import geometry_problem
from autoseg.data.imageio import SUPPORTED_ENDINGS, read_image
from autoseg.errors import InputError
from autoseg.evaluation.metrics import ROW_KEYS, compute_case_metrics
from autoseg.evaluation.summary import format_table, summarize
from autoseg.evaluation.targets import load_regions, parse_regions, read_dataset_targets
from autoseg.log import get_logger
from autoseg.parallel import map_cases

__all__ = [
    "as_label_map",
    "evaluate_and_write",
    "evaluate_folder",
    "find_images",
    "format_table",
    "match_cases",
    "summarize",
    "with_names",
    "write_evaluation",
]

logger = get_logger(__name__)
_SHOWN = 5  # file names listed in an error message before "... and N more"


def _split_ending(name: str, file_ending: str | None) -> tuple[str, str] | None:
    endings = (file_ending,) if file_ending else SUPPORTED_ENDINGS
    for ending in endings:
        if name.lower().endswith(ending.lower()) and len(name) > len(ending):
            return name[: -len(ending)], ending
    return None


def find_images(folder: Path, file_ending: str | None = None) -> dict[str, Path]:
    """Image files of ``folder`` by case id (file name without its ending).

    Args:
        folder: Folder to list (not recursive).
        file_ending: Only files with this ending (e.g. ``".nii.gz"``); by default every
            ending autoseg reads.

    Raises:
        InputError: if the folder is missing or two files share a case id.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("folder not found", path=folder)
    images: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        split = _split_ending(path.name, file_ending)
        if path.name.startswith(".") or not path.is_file() or split is None:
            continue
        case_id = split[0]
        if case_id in images:
            raise InputError(
                f"two files for one case: {images[case_id].name} and {path.name}",
                case_id=case_id,
                path=folder,
            )
        images[case_id] = path
    return images


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" ... and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def match_cases(
    pred_dir: Path, gt_dir: Path, file_ending: str | None = None
) -> list[tuple[str, Path, Path]]:
    """Pair predictions with references by case id.

    Returns:
        ``(case_id, pred_path, gt_path)`` sorted by case id.

    Raises:
        InputError: if a folder is missing or holds no image, a prediction has no reference,
            or a reference has no prediction (the message names the files).
    """
    preds = find_images(pred_dir, file_ending)
    refs = find_images(gt_dir, file_ending)
    endings = file_ending or ", ".join(SUPPORTED_ENDINGS)
    if not refs:
        raise InputError(f"no reference images ({endings}) in the folder", path=gt_dir)
    if not preds:
        raise InputError(f"no predicted images ({endings}) in the folder", path=pred_dir)
    orphans = sorted(set(preds) - set(refs))
    if orphans:
        raise InputError(
            f"{len(orphans)} prediction(s) have no reference in {gt_dir}: "
            + _listing([preds[c].name for c in orphans]),
            path=pred_dir,
        )
    missing = sorted(set(refs) - set(preds))
    if missing:
        raise InputError(
            f"{len(missing)} reference(s) have no prediction in {pred_dir}: "
            + _listing([refs[c].name for c in missing]),
            path=gt_dir,
        )
    return [(case_id, preds[case_id], refs[case_id]) for case_id in sorted(refs)]


def as_label_map(array: np.ndarray, case_id: str, path: Path) -> np.ndarray:
    """``array`` as an integer Z×Y×X label map.

    Raises:
        InputError: if it is not 3D or holds non-integer values.
    """
    if array.ndim != 3:
        raise InputError(
            f"expected a 3D label map, got shape {array.shape}", case_id=case_id, path=path
        )
    if not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise InputError(
                f"label map holds non-integer values (dtype {array.dtype})",
                case_id=case_id,
                path=path,
            )
        array = array.astype(np.int16)
    return array


def _present_values(array: np.ndarray) -> set[int]:
    """Non-zero values of an integer label map (a counting pass when values are small)."""
    if array.size and array.min() >= 0 and array.max() < 2**16:
        counts = np.bincount(array.ravel().astype(np.intp, copy=False))
        return {int(v) for v in np.flatnonzero(counts) if v != 0}
    return {int(v) for v in np.unique(array) if v != 0}


def _evaluate_case(
    job: tuple[Any, ...],
) -> tuple[list[dict[str, Any]], list[int], tuple[float, float, float]]:
    """Worker: rows of one case, the label values of its reference, and its spacing."""
    case_id, pred_path, gt_path, labels, regions, tolerance, ignore = job
    ref, ref_geometry = read_image(gt_path)
    unusable = geometry_problem(ref_geometry)
    if unusable is not None:  # distances in mm need a spacing
        raise InputError(unusable, case_id=case_id, path=gt_path)
    ref = as_label_map(ref, case_id, gt_path)
    pred, pred_geometry = read_image(pred_path)
    pred = as_label_map(pred, case_id, pred_path)
    problems = ref_geometry.differences(pred_geometry)
    if problems:
        raise InputError(
            f"prediction does not match its reference {gt_path.name}: " + "; ".join(problems),
            case_id=case_id,
            path=pred_path,
        )
    ref_values = sorted(_present_values(ref) - {ignore})
    if labels is None:  # every value present here; the caller keeps the union over refs
        labels = sorted((set(ref_values) | _present_values(pred)) - {ignore})
    rows = compute_case_metrics(
        pred, ref, ref_geometry.spacing, labels, regions, tolerance, ignore_label=ignore
    )
    return rows, ref_values, ref_geometry.spacing


def _both_empty_row(label: int, spacing: Sequence[float], tolerance: float) -> dict[str, Any]:
    empty = np.zeros((1, 1, 1), dtype=np.uint8)
    return compute_case_metrics(empty, empty, spacing, [label], None, tolerance)[0]


def evaluate_folder(
    pred_dir: Path,
    gt_dir: Path,
    labels: Sequence[int] | None = None,
    regions: Mapping[str, Sequence[int]] | None = None,
    *,
    num_workers: int = 1,
    file_ending: str | None = None,
    nsd_tolerance_mm: float = 1.0,
    ignore_label: int | None = None,
    names: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Score every prediction in ``pred_dir`` against its reference in ``gt_dir``.

    Args:
        pred_dir: Folder of predicted label maps.
        gt_dir: Folder of reference label maps (their spacing is used).
        labels: Label values to score; by default every non-zero value found in the
            references (a value missing from a case then gives a both-empty NaN row).
        regions: Region name -> label values it unites, scored as one mask.
        num_workers: Processes reading and scoring cases in parallel (1 = in this process).
        file_ending: Only files with this ending; by default every supported ending.
        nsd_tolerance_mm: Tolerance of the normalised surface Dice, in mm.
        ignore_label: Reference value of unannotated voxels, left out of every mask and
            never scored.
        names: Display names by target (``"1"`` -> ``"Anterior"``): given, the table gets
            a ``name`` column after ``target``.

    Returns:
        One row per case x target: ``case`` then the columns of
        :func:`~autoseg.evaluation.metrics.compute_case_metrics` (with ``name`` when
        ``names`` are given), sorted by case id.

    Raises:
        InputError: unmatched files, a shape/geometry mismatch, a non-integer label map.
        DatasetError: an unreadable image.
    """
    pairs = match_cases(Path(pred_dir), Path(gt_dir), file_ending)
    regions_t = {str(k): tuple(int(v) for v in vs) for k, vs in (regions or {}).items()}
    labels_t = None if labels is None else list(dict.fromkeys(int(v) for v in labels))
    tolerance = float(nsd_tolerance_mm)
    jobs = [(c, p, g, labels_t, regions_t, tolerance, ignore_label) for c, p, g in pairs]
    results = list(map_cases(_evaluate_case, jobs, num_workers=num_workers, desc="evaluate"))
    if labels_t is None:
        labels_t = sorted({v for _, ref_values, _ in results for v in ref_values})
    records = []
    for (case_id, _, _), (rows, _, spacing) in zip(pairs, results):
        by_target = {row["target"]: row for row in rows if row["kind"] == "label"}
        for label in labels_t:
            row = by_target.get(str(label)) or _both_empty_row(label, spacing, nsd_tolerance_mm)
            records.append({"case": case_id, **row})
        records.extend({"case": case_id, **row} for row in rows if row["kind"] == "region")
    logger.info(
        "evaluated %d cases, labels %s, regions %s", len(pairs), labels_t, list(regions_t) or "none"
    )
    return with_names(pd.DataFrame.from_records(records, columns=["case", *ROW_KEYS]), names)


def with_names(df: pd.DataFrame, names: Mapping[str, str] | None) -> pd.DataFrame:
    """``df`` with a ``name`` column (the display name of each row's target) after
    ``target``; unchanged without ``names``."""
    if names is None:
        return df
    df = df.copy()
    position = list(df.columns).index("target") + 1
    df.insert(position, "name", [names.get(str(t), "") for t in df["target"]])
    return df


def write_evaluation(
    df: pd.DataFrame, summary: Mapping[str, Any], out_dir: Path
) -> tuple[Path, Path]:
    """Write ``metrics.csv`` (NaN as ``NaN``) and ``summary.json`` (NaN as null) atomically.

    Returns:
        ``(csv_path, json_path)``.
    """
    out_dir = Path(out_dir)
    csv_path, json_path = out_dir / "metrics.csv", out_dir / "summary.json"
    atomic_write_text(csv_path, df.to_csv(index=False, na_rep="NaN"))
    atomic_write_json(json_path, summary)
    return csv_path, json_path


def evaluate_and_write(
    pred_dir: Path,
    gt_dir: Path,
    *,
    labels: Sequence[int] | None = None,
    regions: Mapping[str, Sequence[int]] | str | Path | None = None,
    dataset_json: Path | None = None,
    nsd_tolerance_mm: float = 1.0,
    out_dir: Path | None = None,
    num_workers: int = 1,
) -> dict[str, Any]:
    """What ``autoseg evaluate`` does: evaluate, summarise, write both files into ``out_dir``.

    Args:
        pred_dir: Folder of predicted label maps.
        gt_dir: Folder of reference label maps.
        labels: Label values to score; default: the dataset.json's foreground labels if
            given (none for region-based training: its regions are scored), else every
            non-zero value in the references.
        regions: A region mapping, or a JSON file / inline JSON string
            (:func:`~autoseg.evaluation.targets.load_regions`); merged over the dataset.json's
            regions (these win on a name clash).
        dataset_json: A dataset.json giving default labels and regions (nnU-Net style), the
            ignore label and the names shown beside the values.
        nsd_tolerance_mm: Tolerance of the normalised surface Dice in mm (>= 0).
        out_dir: Where ``metrics.csv`` and ``summary.json`` go (default: ``pred_dir``).
        num_workers: Processes scoring cases in parallel.

    Returns:
        The summary (see :func:`autoseg.evaluation.summary.summarize`), plus ``settings``
        (folders, labels, regions, tolerance).

    Raises:
        InputError: see :func:`evaluate_folder`; bad regions, dataset.json or tolerance.
    """
    if not (math.isfinite(nsd_tolerance_mm) and nsd_tolerance_mm >= 0):
        raise InputError(
            f"the NSD tolerance (--nsd-tolerance) must be a number >= 0 mm, got {nsd_tolerance_mm}"
        )
    bad_labels = sorted(v for v in labels or () if int(v) < 0)
    if bad_labels:
        raise InputError(f"label values (--labels) are >= 0, got {bad_labels[0]}")
    check_writable(out_dir if out_dir is not None else pred_dir)  # before scoring every case
    all_regions: dict[str, tuple[int, ...]] = {}
    ignore_label, names = None, None
    if dataset_json is not None:
        declared = read_dataset_targets(dataset_json)
        all_regions, ignore_label, names = declared.regions, declared.ignore_label, declared.names
        if labels is None and (declared.labels or declared.region_based):
            labels = declared.labels
    if isinstance(regions, (str, Path)):
        regions = load_regions(regions)
    extra = parse_regions(dict(regions or {}))
    all_regions.update(extra)
    if names is not None:
        names = {**names, **{name: name for name in extra}}
    df = evaluate_folder(
        pred_dir,
        gt_dir,
        labels,
        all_regions,
        num_workers=num_workers,
        nsd_tolerance_mm=nsd_tolerance_mm,
        ignore_label=ignore_label,
        names=names,
    )
    summary = summarize(df)
    summary["settings"] = {
        "pred_dir": str(Path(pred_dir).resolve()),
        "gt_dir": str(Path(gt_dir).resolve()),
        "labels": None if labels is None else [int(v) for v in labels],
        "regions": {name: list(values) for name, values in all_regions.items()},
        "nsd_tolerance_mm": float(nsd_tolerance_mm),
        **({} if ignore_label is None else {"ignore_label": ignore_label}),
    }
    csv_path, json_path = write_evaluation(df, summary, Path(out_dir or pred_dir))
    logger.info("wrote %s and %s", csv_path, json_path)
    return summary
