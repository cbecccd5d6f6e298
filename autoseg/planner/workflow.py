"""``autoseg plan``: verify -> fingerprint -> plan -> preprocess, each skipped when current.

Each step records digests of its inputs; re-running with unchanged inputs does no work, and
a changed input redoes only what depends on it (e.g. new heuristics re-plan and, if the
target spacing or normalisation changed, re-preprocess; the fingerprint is kept).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autoseg.artefacts import content_digest, files_digest, is_current, text_digest
from autoseg.atomic import atomic_write_json
from autoseg.data.dataset import Case, Dataset
from autoseg.data.formats import load_dataset
from autoseg.data.verify import verify_dataset
from autoseg.errors import DatasetError, PlansError
from autoseg.leftovers import clean_temporaries
from autoseg.log import get_logger
from autoseg.parallel import map_cases
from autoseg.planner.fingerprint import CaseFingerprint, Fingerprint, aggregate, fingerprint_case
from autoseg.planner.fingerprint_io import load_fingerprint, save_fingerprint
from autoseg.planner.hardware import detect_hardware
from autoseg.planner.heuristics import load_heuristics
from autoseg.planner.mirroring import ClassOrder, class_orders
from autoseg.planner.planner import plan_dataset
from autoseg.planner.plans import Plans, load_plans, preprocessing_settings
from autoseg.planner.source_guard import check_same_source
from autoseg.preprocessing.dataset import PreprocessingReport, preprocess_dataset
from autoseg.workspace import Workspace

__all__ = [
    "PlanReport",
    "dataset_digest",
    "fingerprint_dataset",
    "prepare_dataset",
    "preprocess_planned",
    "run_plan",
]

_log = get_logger(__name__)


@dataclass(frozen=True)
class PlanReport:
    """What ``autoseg plan`` did."""

    plans: Plans
    fingerprint_reused: bool
    plans_reused: bool
    preprocessing: PreprocessingReport
    class_orders: tuple[ClassOrder, ...] = ()
    """The class orders that kept an axis from being mirrored (``autoseg.planner.mirroring``)."""


def dataset_digest(dataset: Dataset) -> str:
    """Digest of a dataset: its description file's content and every case file's stat."""
    description = content_digest(dataset.source) if dataset.source else ""
    files = [p for case in dataset.cases for p in case.files]
    return text_digest(description + files_digest(files))


def _fingerprint_one(case: Case, dataset: Dataset) -> tuple[CaseFingerprint, np.ndarray]:
    return fingerprint_case(case, dataset)


def fingerprint_dataset(
    dataset: Dataset, workspace: Workspace, *, num_workers: int = 1, inputs: dict[str, str]
) -> tuple[Fingerprint, bool]:
    """Compute (or reuse) fingerprint.json. Returns ``(fingerprint, reused)``; one of another
    schema (an older autoseg) or a damaged one is computed again."""
    if is_current(workspace.fingerprint_json, inputs):
        try:
            return load_fingerprint(workspace.fingerprint_json), True
        except PlansError:
            _log.info(
                "fingerprint.json is from another autoseg version or damaged: computing it again"
            )
    if not dataset.cases:
        raise DatasetError("the dataset has no training cases", path=dataset.root)
    work = functools.partial(_fingerprint_one, dataset=dataset)
    results = list(map_cases(work, dataset.cases, num_workers=num_workers, desc="fingerprint"))
    fingerprint = aggregate(dataset, [r[0] for r in results], [r[1] for r in results], inputs)
    save_fingerprint(workspace.fingerprint_json, fingerprint)
    return fingerprint, False


def _verify(path: Path, workspace: Workspace, num_workers: int) -> Dataset:
    """Verify the dataset, reading only the cases whose files changed since the last time
    (the per-case cache ``verify.json``); every problem is logged, the first one raised."""
    report = verify_dataset(path, num_workers=num_workers, cache=workspace.verify_json)
    for warning in report.warnings:
        _log.warning("warning: %s", warning)
    if not report.ok or report.dataset is None:
        for problem in report.problems:
            _log.error("%s", problem)
        first = report.problems[0] if report.problems else None
        raise DatasetError(
            f"{len(report.problems)} problem(s) found, first: {first}; "
            f"'autoseg verify {path}' lists them all",
            path=path,
        )
    return report.dataset


def prepare_dataset(
    dataset_path: Path, workspace: Workspace, *, num_workers: int = 1, overwrite: bool = False
) -> tuple[Dataset, Fingerprint, bool]:
    """The heuristics-independent first half of ``autoseg plan``: verify (only the cases
    whose files changed, see :mod:`autoseg.data.verify_cache`), write ``source.json``,
    fingerprint (reused while current).

    Returns:
        ``(dataset, fingerprint, fingerprint_reused)``.

    Raises:
        DatasetError: if the dataset has problems (all are logged) or cannot be read.
        PlansError: if the workspace holds folds trained on another dataset (see
            :mod:`autoseg.planner.source_guard`; ``overwrite`` deletes them instead).
    """
    load_dataset(dataset_path)  # a dataset that cannot be read at all: one clear error
    check_same_source(workspace, dataset_path, overwrite=overwrite)
    clean_temporaries(workspace.root)
    dataset = _verify(dataset_path, workspace, num_workers)
    digest = dataset_digest(dataset)
    atomic_write_json(
        workspace.source_json,
        {
            "dataset": str(Path(dataset_path).resolve()),
            "format": dataset.format,
            "inputs": {"dataset": digest},
        },
    )
    fingerprint, reused = fingerprint_dataset(
        dataset, workspace, num_workers=num_workers, inputs={"dataset": digest}
    )
    return dataset, fingerprint, reused


def run_plan(
    dataset_path: Path,
    workspace: Workspace,
    *,
    heuristics_path: Path | None = None,
    device: str | None = None,
    gpu_memory_bytes: int | None = None,
    num_workers: int = 1,
    overwrite: bool = False,
) -> PlanReport:
    """Run verify, fingerprint, plan and preprocess for a dataset into ``workspace``.

    Raises:
        DatasetError: if the dataset has problems (all are logged) or cannot be read.
        ConfigError: for invalid heuristics or device options.
        PlansError: if nothing fits the memory target, or the workspace is trained on
            another dataset (unless ``overwrite``).
    """
    dataset, fingerprint, fingerprint_reused = prepare_dataset(
        dataset_path, workspace, num_workers=num_workers, overwrite=overwrite
    )
    heuristics = load_heuristics(heuristics_path)
    hardware = detect_hardware(
        device, gpu_memory_bytes, heuristics, cpu_speed_cache=workspace.cpu_speed_json
    )
    inputs = {
        "fingerprint": content_digest(workspace.fingerprint_json),
        "heuristics": text_digest(json.dumps(heuristics.to_dict(), sort_keys=True)),
        "hardware": text_digest(json.dumps(hardware.to_dict(), sort_keys=True)),
    }
    plans_reused = is_current(workspace.plans_json, inputs)
    if plans_reused:
        plans = load_plans(workspace.plans_json)
    else:
        plans = plan_dataset(
            fingerprint,
            heuristics,
            hardware,  # type: ignore[arg-type]
            regions=dataset.regions,
            use_roi=dataset.has_roi,
            inputs=inputs,
            ignore_label=dataset.ignore_label,
            regions_class_order=dataset.regions_class_order,
        )
        plans.save(workspace.plans_json)
    report = preprocess_planned(dataset, plans, workspace, num_workers=num_workers)
    ignored = () if dataset.ignore_label is None else (dataset.ignore_label,)
    orders = class_orders(fingerprint.cases, plans.heuristics, ignore=ignored)
    return PlanReport(plans, fingerprint_reused, plans_reused, report, tuple(orders))


def preprocess_planned(
    dataset: Dataset, plans: Plans, workspace: Workspace, *, num_workers: int = 1
) -> PreprocessingReport:
    """Preprocess the training cases for every configuration of ``plans`` (skipping cases
    that are current).

    Raises:
        DatasetError: if a case cannot be loaded (finished cases stay on disk).
    """
    settings = [preprocessing_settings(plans, name) for name in plans.configurations]
    return preprocess_dataset(dataset, settings, workspace, num_workers=num_workers)
