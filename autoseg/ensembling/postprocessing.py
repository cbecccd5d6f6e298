"""Largest-connected-component postprocessing, kept per class only when it helps.

Connectivity is full 3D: the 26-neighbourhood (voxels sharing a face, an edge or a corner
are connected). :func:`keep_largest_component` keeps the largest component of one class and
sets the voxels of every other component of that class to background (0). When two
components tie for largest, the one met first in C (z, y, x) order is kept.

:func:`decide_postprocessing` compares, for each class, the mean metric over cases before and
after the rule, and keeps the rule only when it *strictly* improves the mean (higher Dice,
IoU or NSD; lower HD95). A tie — including the common case where the rule changes nothing —
keeps the prediction as it is. Cases where the metric is undefined (both masks empty, see
:mod:`autoseg.evaluation.metrics`) are left out of both means; the rule never empties a
non-empty prediction, so the same cases are left out before and after. Removing voxels of
one class only turns them into background, so the decisions of different classes do not
interact and are made independently.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from autoseg.errors import ConfigError
from autoseg.evaluation import metrics
from autoseg.strict import did_you_mean

__all__ = [
    "METRICS",
    "PostprocessingDecision",
    "apply_postprocessing",
    "decide_postprocessing",
    "keep_largest_component",
    "rule_from_decisions",
]

_FULL_3D = np.ones((3, 3, 3), dtype=bool)

Scorer = Callable[[np.ndarray, np.ndarray, Sequence[float]], float]
METRICS: dict[str, tuple[Scorer, bool]] = {
    "dice": (lambda p, r, s: metrics.dice(p, r), True),
    "iou": (lambda p, r, s: metrics.iou(p, r), True),
    "nsd": (lambda p, r, s: metrics.normalized_surface_dice(p, r, s, 1.0), True),
    "hd95_mm": (metrics.hd95, False),
}
"""Metric name -> (scorer(pred, ref, spacing_mm), higher_is_better). NSD uses a 1 mm tolerance."""


@dataclass(frozen=True)
class PostprocessingDecision:
    """Whether to keep only the largest component of one class, and the evidence.

    Attributes:
        label: The class (label value).
        apply: True when the rule strictly improved the mean metric.
        metric: Metric compared (a key of :data:`METRICS`).
        before: Mean metric over the scored cases without the rule (NaN if none scored).
        after: Mean metric with the rule.
        num_cases: Cases with a defined metric (both-empty cases left out).
        num_changed: Cases whose prediction of this class the rule changed.
    """

    label: int
    apply: bool
    metric: str
    before: float
    after: float
    num_cases: int
    num_changed: int

    def __post_init__(self) -> None:
        for name, kind in (
            ("label", int),
            ("apply", bool),
            ("metric", str),
            ("before", float),
            ("after", float),
            ("num_cases", int),
            ("num_changed", int),
        ):
            object.__setattr__(self, name, kind(getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (NaN means become None)."""
        return {
            "label": self.label,
            "apply": self.apply,
            "metric": self.metric,
            "before": self.before if math.isfinite(self.before) else None,
            "after": self.after if math.isfinite(self.after) else None,
            "num_cases": self.num_cases,
            "num_changed": self.num_changed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PostprocessingDecision:
        """Inverse of :meth:`to_dict`; unknown or missing keys raise ``ValueError``."""
        expected = ["label", "apply", "metric", "before", "after", "num_cases", "num_changed"]
        if set(data) != set(expected):
            raise ValueError(
                f"postprocessing decision has keys {sorted(data)}; expected {expected}"
            )
        values = dict(data)
        for key in ("before", "after"):
            values[key] = math.nan if values[key] is None else values[key]
        return cls(**values)


def keep_largest_component(labels: np.ndarray, label_value: int) -> np.ndarray:
    """Keep only the largest 26-connected component of one class; others become background.

    Args:
        labels: Integer label map (Z, Y, X).
        label_value: The class whose stray components are removed (non-zero).

    Returns:
        A new label map; other classes are untouched.

    Raises:
        ValueError: if ``label_value`` is 0 or ``labels`` is not 3D.
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be a 3D (Z, Y, X) array, got shape {labels.shape}")
    if int(label_value) == 0:
        raise ValueError("label_value must be a foreground class, got 0")
    out = labels.copy()
    mask = labels == label_value
    if not mask.any():
        return out
    coords = np.nonzero(mask)
    box = tuple(slice(int(c.min()), int(c.max()) + 1) for c in coords)
    components, count = ndimage.label(mask[box], structure=_FULL_3D)
    if count <= 1:
        return out
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    largest = int(np.argmax(sizes))  # argmax: first of equal sizes = first met in C order
    removed = (components != 0) & (components != largest)
    out[box][removed] = 0
    return out


def apply_postprocessing(labels: np.ndarray, rule: Mapping[int, bool]) -> np.ndarray:
    """Apply :func:`keep_largest_component` to every class whose rule entry is True.

    Args:
        labels: Integer label map (Z, Y, X).
        rule: Class -> whether to keep only its largest component (e.g. best.json's rule).

    Returns:
        A new label map.
    """
    out = np.asarray(labels).copy()
    for label, keep in sorted(rule.items()):
        if keep:
            out = keep_largest_component(out, int(label))
    return out


def _lookup_metric(metric: str) -> tuple[Scorer, bool]:
    if metric not in METRICS:
        hint = did_you_mean(metric, METRICS)
        raise ConfigError(f"unknown metric {metric!r}; choose one of {sorted(METRICS)}{hint}")
    return METRICS[metric]


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def decide_postprocessing(
    cases: Sequence[tuple[np.ndarray, np.ndarray, Sequence[float]]],
    labels: Sequence[int],
    metric: str = "dice",
    ignore_label: int | None = None,
) -> dict[int, PostprocessingDecision]:
    """Decide per class whether keeping only the largest component improves the mean metric.

    Args:
        cases: ``(prediction, reference, spacing_mm)`` per case: integer label maps
            (Z, Y, X) of one shape and the voxel size in mm along (Z, Y, X), e.g. the
            out-of-fold predictions of cross-validation.
        labels: Foreground classes to decide on.
        metric: A key of :data:`METRICS` (``"dice"``, ``"iou"``, ``"nsd"``, ``"hd95_mm"``).
        ignore_label: Reference value of unannotated voxels: components are found on the
            whole prediction, scores computed on the annotated voxels only.

    Returns:
        Class -> :class:`PostprocessingDecision`; ``apply`` only when the mean strictly
        improves (ties keep the prediction unchanged).

    Raises:
        ConfigError: on an unknown metric.
        ValueError: on a class 0 or a prediction/reference shape mismatch.
    """
    scorer, higher_is_better = _lookup_metric(metric)
    if any(int(v) == 0 for v in labels):
        raise ValueError(f"postprocessing is decided for foreground classes only, got {labels=}")
    decisions = {}
    for label in (int(v) for v in labels):
        before, after, changed = [], [], 0
        for index, (pred, ref, spacing) in enumerate(cases):
            if np.shape(pred) != np.shape(ref):
                raise ValueError(
                    f"case #{index}: prediction {np.shape(pred)} and reference "
                    f"{np.shape(ref)} differ in shape"
                )
            pred_mask, ref_mask = np.asarray(pred) == label, np.asarray(ref) == label
            kept = keep_largest_component(pred_mask.astype(np.uint8), 1).astype(bool)
            annotated = None if ignore_label is None else np.asarray(ref) != ignore_label
            score = scorer(_annotated(pred_mask, annotated), ref_mask, spacing)
            before.append(score)
            if np.array_equal(kept, pred_mask):
                after.append(score)
            else:
                changed += 1
                after.append(scorer(_annotated(kept, annotated), ref_mask, spacing))
        mean_before, mean_after = _nanmean(before), _nanmean(after)
        better = mean_after > mean_before if higher_is_better else mean_after < mean_before
        decisions[label] = PostprocessingDecision(
            label=label,
            apply=bool(better),
            metric=metric,
            before=mean_before,
            after=mean_after,
            num_cases=sum(not math.isnan(v) for v in before),
            num_changed=changed,
        )
    return decisions


def _annotated(mask: np.ndarray, annotated: np.ndarray | None) -> np.ndarray:
    return mask if annotated is None else mask & annotated


def rule_from_decisions(decisions: Mapping[int, PostprocessingDecision]) -> dict[int, bool]:
    """The rule (class -> apply) of a set of decisions, for :func:`apply_postprocessing`."""
    return {int(label): decision.apply for label, decision in sorted(decisions.items())}
