"""autoseg.evaluation: segmentation metrics, per-case tables and their summaries.

Conventions for empty masks, surfaces and units are in :mod:`autoseg.evaluation.metrics`
and docs/evaluation.md.
"""

from __future__ import annotations

from autoseg.evaluation.evaluate import (
    evaluate_and_write,
    evaluate_folder,
    find_images,
    match_cases,
    with_names,
    write_evaluation,
)
from autoseg.evaluation.metrics import (
    METRIC_NAMES,
    ROW_KEYS,
    compute_case_metrics,
    dice,
    directed_surface_distances,
    hd95,
    image_diagonal_mm,
    iou,
    normalized_surface_dice,
    volume_difference_ml,
)
from autoseg.evaluation.summary import format_table, summarize
from autoseg.evaluation.targets import (
    DatasetTargets,
    load_regions,
    parse_regions,
    read_dataset_json,
    read_dataset_targets,
)

__all__ = [
    "METRIC_NAMES",
    "ROW_KEYS",
    "DatasetTargets",
    "compute_case_metrics",
    "dice",
    "directed_surface_distances",
    "evaluate_and_write",
    "evaluate_folder",
    "find_images",
    "format_table",
    "hd95",
    "image_diagonal_mm",
    "iou",
    "load_regions",
    "match_cases",
    "normalized_surface_dice",
    "parse_regions",
    "read_dataset_json",
    "read_dataset_targets",
    "summarize",
    "volume_difference_ml",
    "with_names",
    "write_evaluation",
]
