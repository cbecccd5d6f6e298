"""Cross-validation summaries: every fold's out-of-fold predictions of one configuration, scored
together against the raw dataset's reference label maps.

Inputs (see docs/artefacts.md)::

    W/source.json                                   the dataset the workspace was planned from
    W/plans.json                                    labels and regions to score
    W/splits.json                                   which cases each fold validates on
    W/results/<config>/fold_<k>/validation/<case>.nii.gz   label map, original geometry

Outputs, written atomically and skipped when their ``inputs`` digests are unchanged::

    W/results/<config>/cv_summary.json   means per label/region, foreground mean, per-case rows
    W/results/<config>/cv_summary.csv    one row per case x label/region (with its fold)
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from autoseg import __version__
from autoseg.artefacts import content_digest, files_digest, is_current, text_digest
from autoseg.atomic import atomic_write_json, atomic_write_text
from autoseg.data.imageio import read_image
from autoseg.errors import ConfigError, InputError
from autoseg.evaluation.evaluate import as_label_map, with_names
from autoseg.evaluation.metrics import METRIC_NAMES, ROW_KEYS, compute_case_metrics
from autoseg.evaluation.oof import OOFCase, out_of_fold_cases, read_reference
from autoseg.evaluation.summary import summarize
from autoseg.frozendict import FrozenDict
from autoseg.log import get_logger
from autoseg.parallel import map_cases
from autoseg.planner.plans import load_plans
from autoseg.strict import did_you_mean
from autoseg.workspace import Workspace

__all__ = [
    "CV_SCHEMA_VERSION",
    "LOWER_IS_BETTER",
    "METRIC_CHOICES",
    "CVSummary",
    "metric_column",
    "score_oof_case",
    "summarise_cv",
]

logger = get_logger(__name__)
CV_SCHEMA_VERSION = 1
METRIC_CHOICES: dict[str, str] = {"dice": "dice", "iou": "iou", "nsd": "nsd", "hd95": "hd95_mm"}
"""Metric name on the command line -> column of the per-case table."""
LOWER_IS_BETTER = frozenset({"hd95_mm"})
"""Metric columns where a smaller value is better."""


def metric_column(metric: str) -> str:
    """The per-case table column of a metric name (``"hd95"`` and ``"hd95_mm"`` both work).

    Raises:
        ConfigError: on an unknown metric (lists the choices, suggests the nearest one).
    """
    if metric in METRIC_CHOICES.values():
        return metric
    if metric in METRIC_CHOICES:
        return METRIC_CHOICES[metric]
    hint = did_you_mean(metric, METRIC_CHOICES)
    raise ConfigError(f"unknown metric {metric!r}; choose one of {list(METRIC_CHOICES)}{hint}")


@dataclass(frozen=True)
class CVSummary:
    """The cross-validated scores of one configuration (the JSON file holds everything else).

    Attributes:
        config: Configuration name.
        metric: Metric column the ``score`` and ``per_class`` are given in.
        score: Mean over the foreground labels of their NaN-aware per-label means.
        per_class: Foreground label value (as a string) -> mean metric over the cases (empty
            for region-based training).
        per_region: Region name -> mean metric over the cases.
        folds: The folds summarised.
        num_cases: Out-of-fold cases scored.
        json_path: ``results/<config>/cv_summary.json``.
        csv_path: ``results/<config>/cv_summary.csv``.
        reused: True when the files were current and nothing was recomputed.
    """

    config: str
    metric: str
    score: float
    per_class: Mapping[str, float]
    per_region: Mapping[str, float]
    folds: tuple[int, ...]
    num_cases: int
    json_path: Path
    csv_path: Path
    reused: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "score", _float(self.score))
        for name in ("per_class", "per_region"):
            values = {str(k): _float(v) for k, v in getattr(self, name).items()}
            object.__setattr__(self, name, FrozenDict(values))
        object.__setattr__(self, "folds", tuple(int(f) for f in self.folds))
        object.__setattr__(self, "num_cases", int(self.num_cases))

    def table(self) -> pd.DataFrame:
        """The per-case table (``case``, ``fold``, then the metric row keys), NaN kept."""
        return pd.read_csv(self.csv_path, dtype={"case": str, "target": str, "label_values": str})


def _float(value: Any) -> float:
    value = math.nan if value is None else float(value)
    return value if math.isfinite(value) else math.nan


def score_oof_case(
    case: OOFCase,
    labels: Sequence[int],
    regions: Mapping[str, Sequence[int]],
    ignore_label: int | None = None,
) -> list[dict[str, Any]]:
    """Rows of :func:`compute_case_metrics` for one out-of-fold label map, with case and fold
    (the reference's ``ignore_label`` voxels left out of every mask).

    Raises:
        InputError: if the prediction is not a label map on the reference's grid.
        DatasetError: if a file cannot be read.
    """
    reference, geometry = read_reference(case)
    prediction, pred_geometry = read_image(case.prediction)
    prediction = as_label_map(prediction, case.case_id, case.prediction)
    problems = geometry.differences(pred_geometry)
    if problems:
        raise InputError(
            f"prediction does not match the reference {case.reference.name}: "
            + "; ".join(problems),
            case_id=case.case_id,
            path=case.prediction,
        )
    rows = compute_case_metrics(
        prediction, reference, geometry.spacing, labels, regions, ignore_label=ignore_label
    )
    return [{"case": case.case_id, "fold": case.fold, **row} for row in rows]


def _inputs(
    workspace: Workspace,
    cases: Sequence[OOFCase],
    labels: Sequence[int],
    regions: Mapping[str, Sequence[int]],
    ignore_label: int | None = None,
) -> dict[str, str]:
    scored: dict[str, Any] = {
        "labels": list(labels),
        "regions": {k: list(v) for k, v in regions.items()},
    }
    if ignore_label is not None:
        scored["ignore_label"] = ignore_label
    targets = json.dumps(scored)
    return {
        "splits": content_digest(workspace.splits_json),
        "targets": text_digest(targets),
        "predictions": files_digest(c.prediction for c in cases),
        "references": files_digest(c.reference for c in cases),
    }


def _from_json(data: Mapping[str, Any], metric: str, json_path: Path, reused: bool) -> CVSummary:
    targets = data["summary"]["targets"]
    return CVSummary(
        config=str(data["config"]),
        metric=metric,
        score=data["summary"]["foreground_mean"][metric],
        per_class={
            k: t["mean"][metric] for k, t in targets.items() if t["kind"] == "label" and k != "0"
        },
        per_region={k: t["mean"][metric] for k, t in targets.items() if t["kind"] == "region"},
        folds=tuple(data["folds"]),
        num_cases=int(data["num_cases"]),
        json_path=json_path,
        csv_path=json_path.with_suffix(".csv"),
        reused=reused,
    )


def summarise_cv(
    workspace: Workspace, config: str, metric: str = "dice", *, num_workers: int = 1
) -> CVSummary:
    """Evaluate every fold's out-of-fold label maps of ``config`` together; write the summary.

    Each case is scored with :func:`compute_case_metrics` against the raw dataset's label map
    (spacing from the reference), per foreground label of the plan and per region (only per
    region for region-based training; ignore-label voxels left out). The ``score`` is the
    summary's foreground mean (NaN-aware, as :func:`summarize`: over the regions for
    region-based training). The per-case table names each target beside its value.

    Args:
        workspace: The workspace (source.json, plans.json, splits.json, results/).
        config: A planned configuration whose every fold has been trained.
        metric: ``"dice"``, ``"iou"``, ``"nsd"`` or ``"hd95"`` (mm; lower is better): the
            metric of the returned ``score`` (the files hold every metric).
        num_workers: Processes scoring cases in parallel.

    Returns:
        The summary; ``reused`` tells whether current files were read back instead.

    Raises:
        ConfigError: on an unknown metric.
        PlansError: plans.json missing, or ``config`` not planned.
        InputError: splits.json missing or malformed, folds or cases without validation
            outputs (the message lists them and the ``autoseg train`` command), a
            prediction off the reference's grid.
        DatasetError: the dataset of source.json cannot be read.
    """
    column = metric_column(metric)
    plans = load_plans(workspace.plans_json)
    plans.configuration(config)  # PlansError naming the planned configurations
    labels, ignore = list(plans.scored_labels), plans.ignore_label
    regions = {k: tuple(v) for k, v in plans.regions.items()}
    cases = out_of_fold_cases(workspace, config)
    inputs = _inputs(workspace, cases, labels, regions, ignore)
    json_path = workspace.config_dir(config) / "cv_summary.json"
    csv_path = json_path.with_suffix(".csv")
    if is_current(json_path, inputs) and csv_path.is_file():
        logger.info("%s is current; not re-evaluated", json_path)
        return _from_json(json.loads(json_path.read_text()), column, json_path, reused=True)
    score = functools.partial(score_oof_case, labels=labels, regions=regions, ignore_label=ignore)
    rows = [
        row
        for case_rows in map_cases(score, cases, num_workers=num_workers, desc=f"cv {config}")
        for row in case_rows
    ]
    df = pd.DataFrame.from_records(rows, columns=["case", "fold", *ROW_KEYS])
    df = with_names(df, plans.target_names)
    summary = summarize(df)
    data = {
        "schema_version": CV_SCHEMA_VERSION,
        "autoseg_version": __version__,
        "config": config,
        "folds": sorted({c.fold for c in cases}),
        "num_cases": len(cases),
        "labels": labels,
        "regions": {k: list(v) for k, v in regions.items()},
        "metrics": list(METRIC_NAMES),
        "summary": summary,
        "per_case": df.to_dict(orient="records"),
        "inputs": inputs,
    }
    atomic_write_text(csv_path, df.to_csv(index=False, na_rep="NaN"))
    atomic_write_json(json_path, data)
    logger.info("cross-validation of %s over %d cases: %s", config, len(cases), json_path)
    return _from_json(json.loads(json_path.read_text()), column, json_path, reused=False)
