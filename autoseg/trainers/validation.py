"""End-of-training validation: predict the fold's validation cases, export, score.

Uses the predictor's functions (:func:`autoseg.inference.probabilities.predict_probabilities`
on the preprocessed case, :func:`autoseg.inference.export.export_prediction` back to the
original geometry), so validation scores exactly what ``autoseg predict`` would produce
(without postprocessing). Writes into ``fold_<k>/validation/``:

- ``<case>.nii.gz``: label map in the original geometry (header of the case's first channel);
- ``<case>.npz``: key ``probabilities``, float16 K×Z×Y×X softmax (region sigmoids for
  region-based training) in the original geometry (the ensembler and find-best average
  these);
- ``summary.json``: ``{"schema_version", "inputs", "metrics": per-case rows of
  compute_case_metrics (with "case"), "summary": summarize(...)}``.

A cascade's second stage predicts on the image and the first stage's out-of-fold label map
of the case (``stage_dir``, see :mod:`autoseg.trainers.previous_stage`), as one channel per
foreground label.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from autoseg.artefacts import content_digest, read_json
from autoseg.atomic import atomic_write_json
from autoseg.data.case_io import reference_image_path
from autoseg.data.dataset import Dataset
from autoseg.data.imageio import read_image
from autoseg.evaluation.metrics import compute_case_metrics
from autoseg.evaluation.summary import summarize
from autoseg.inference.cascade import with_stage_channels
from autoseg.inference.cost import default_mirroring, estimate_resampled_cost
from autoseg.inference.export import export_prediction
from autoseg.inference.probabilities import predict_probabilities
from autoseg.log import get_logger, progress
from autoseg.names import inside
from autoseg.planner.plans import Plans
from autoseg.preprocessing.store import load_preprocessed_case
from autoseg.trainers.config import TrainConfig
from autoseg.trainers.session import FoldSpec

__all__ = [
    "VALIDATION_ENDING",
    "ValidationOptions",
    "checkpoint_inputs",
    "validate_case",
    "validate_cases",
]

VALIDATION_ENDING = ".nii.gz"
_log = get_logger(__name__)


@dataclass(frozen=True)
class ValidationOptions:
    """How the final validation predicts.

    Attributes:
        device: Device to predict on.
        mirroring: Test-time mirroring.
        step_fraction: Sliding-window step (fraction of the patch).
        amp: Mixed precision (see :mod:`autoseg.precision`).
    """

    device: torch.device
    mirroring: bool
    step_fraction: float
    amp: bool


def validation_shapes(spec: FoldSpec) -> dict[str, tuple[int, ...]]:
    """Each validation case's shape on the plan's grid, from its preprocessed properties (the
    plan's inference patch where they do not say)."""
    fallback = tuple(spec.config_plan.inference_patch_size)
    shapes = {}
    for case_id in spec.val_ids:
        properties = read_json(spec.data_dir / f"{case_id}.json") or {}
        shapes[case_id] = tuple(properties.get("shape_after_resample", fallback))
    return shapes


def lower_median_case(sizes: Mapping[str, float]) -> str:
    """The case of the lower median size (ties broken by case id); ``sizes`` not empty."""
    ordered = sorted(sizes, key=lambda case_id: (sizes[case_id], case_id))
    return ordered[(len(ordered) - 1) // 2]


def final_validation_mirrors(spec: FoldSpec, config: TrainConfig, device_type: str) -> bool:
    """Whether the fold's final validation mirrors: as ``--val-mirroring`` /
    ``--no-val-mirroring`` say, else as ``autoseg predict`` would by default for one model on
    the median-sized validation case (:func:`~autoseg.inference.cost.default_mirroring`)."""
    if config.val_mirroring is not None:
        return bool(config.val_mirroring)
    shapes = validation_shapes(spec)
    if not shapes:
        return default_mirroring(device_type, None)
    median = shapes[lower_median_case({c: math.prod(s) for c, s in shapes.items()})]
    cost = estimate_resampled_cost(
        spec.plans,
        spec.config_name,
        median,
        mirroring=True,
        step_fraction=config.val_step_fraction,
    )
    return default_mirroring(device_type, cost)


def validate_case(
    network: torch.nn.Module,
    plans: Plans,
    config_name: str,
    data_dir: Path,
    case_id: str,
    dataset: Dataset,
    out_dir: Path,
    options: ValidationOptions,
    stage_dir: Path | None = None,
) -> list[dict[str, Any]]:
    """Predict one validation case, export it into ``out_dir`` and score it; returns its
    metric rows (none for an unlabelled case). ``stage_dir``: a cascade's first-stage
    label maps."""
    plan = plans.configuration(config_name)
    preprocessed = load_preprocessed_case(data_dir, case_id, mmap=False)  # writable arrays
    image = preprocessed.image
    if plan.previous_stage is not None:
        if stage_dir is None:
            raise ValueError(f"{config_name} is a cascade: validating it needs its stage_dir")
        stage = np.load(stage_dir / f"{case_id}.npy", allow_pickle=False)
        image = with_stage_channels(image, stage, plans.foreground_labels)
    probabilities = predict_probabilities(
        [network],
        plan,
        image,
        use_mirroring=options.mirroring,
        step_fraction=options.step_fraction,
        device=options.device,
        amp=options.amp,
        roi=None if preprocessed.roi is None else np.asarray(preprocessed.roi, dtype=bool),
        region_based=plans.region_based,
    )
    case = dataset.case(case_id)
    roi = None
    if plans.use_roi_mask and case.roi is not None:
        roi = read_image(case.roi)[0] > 0
    labels = export_prediction(
        probabilities,
        preprocessed.properties,
        inside(out_dir, case_id, VALIDATION_ENDING),
        reference=reference_image_path(case),
        probabilities_path=inside(out_dir, case_id, ".npz"),
        roi=roi,
        anisotropy_threshold=plans.heuristics.anisotropy_threshold,
        regions_class_order=plans.regions_class_order,
    )
    if case.label is None:
        return []
    reference = read_image(case.label)[0]
    rows = compute_case_metrics(
        labels,
        np.rint(reference).astype(np.int64),
        preprocessed.properties.original.spacing,
        list(plans.scored_labels),
        regions=plans.regions,
        ignore_label=plans.ignore_label,
    )
    return [{"case": case_id, **row} for row in rows]


def validate_cases(
    network: torch.nn.Module,
    plans: Plans,
    config_name: str,
    data_dir: Path,
    case_ids: Sequence[str],
    dataset: Dataset,
    out_dir: Path,
    options: ValidationOptions,
    *,
    inputs: dict[str, str],
    label: str | None = None,
    stage_dir: Path | None = None,
) -> dict[str, Any]:
    """Predict, export and score ``case_ids``; write ``summary.json``; return its content.

    Args:
        network: The trained network (the final weights).
        plans: The plan it was trained with.
        config_name: Its configuration.
        data_dir: Folder of the preprocessed cases.
        case_ids: The fold's validation cases.
        dataset: The raw dataset (reference labels and image headers).
        out_dir: ``fold_<k>/validation``.
        options: How to predict (device, mirroring, step, precision).
        inputs: Digests recorded in summary.json (the checkpoint it was computed from).
        label: What the progress shows (default ``"<config> validation"``).
        stage_dir: A cascade's first-stage label maps.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    network.eval()
    desc = label or f"{config_name} validation"
    for case_id in progress(case_ids, desc=desc, total=len(case_ids)):
        rows += validate_case(
            network, plans, config_name, data_dir, case_id, dataset, out_dir, options, stage_dir
        )
    summary = summarize(pd.DataFrame.from_records(rows)) if rows else {}
    content = {"schema_version": 1, "inputs": inputs, "metrics": rows, "summary": summary}
    atomic_write_json(out_dir / "summary.json", content)
    _log.info("validation of %d cases: %s", len(case_ids), _dice_line(summary, plans))
    return content


def _dice_line(summary: dict[str, Any], plans: Plans) -> str:
    """``mean foreground Dice 0.8123 (Anterior 0.8301, Posterior 0.7945)``."""
    mean = summary.get("foreground_mean", {}).get("dice", math.nan) if summary else math.nan
    what = "region" if plans.region_based else "foreground"
    parts = []
    for target in plans.score_targets:
        entry = summary.get("targets", {}).get(target.key) if summary else None
        if entry is not None:
            parts.append(f"{target.name or target.key} {entry['mean']['dice']:.4f}")
    detail = f" ({', '.join(parts)})" if parts else ""
    return f"mean {what} Dice {mean:.4f}{detail}"


def checkpoint_inputs(path: Path) -> dict[str, str]:
    """The ``inputs`` of summary.json: the digest of the checkpoint it was computed from."""
    return {"checkpoint": content_digest(path)}
