"""``best.json``: find-best's choice of configuration(s), postprocessing and the evidence.

Layout (``schema_version`` 1; NaN scores are written as null)::

    {"schema_version": 1, "autoseg_version": "...",
     "configs": ["unet3d", "deepmedic"],          # one config, or an ensemble of several
     "folds": [0, 1, 2, 3, 4],
     "metric": "dice",                              # dice | iou | nsd | hd95 (mm, lower wins)
     "score": 0.91,                                 # cross-validated, before postprocessing
     "score_postprocessed": 0.92,                   # with the chosen postprocessing
     "postprocessing": {"1": true, "2": false},     # keep the largest component, per label
     "postprocessing_decisions": [{"label": 1, "apply": true, "before": ..., "after": ...}],
     "candidates": [{"configs": [...], "score": ..., "per_class": {"1": ...},
                     "per_region": {...}, "ci95": [lo, hi], "num_cases": 20}, ...],
     "comparison": {"winner": [...], "runner_up": [...], "mean_difference": ...,
                    "ci95": [lo, hi], "ci_includes_zero": false, "n_cases": 20, ...} | null,
     "predict_command": "autoseg predict -i INPUT -o OUTPUT --work W --config best",
     "inputs": {...}}

``autoseg predict --config best`` averages the softmax of every fold of every chosen
configuration, then applies the postprocessing rule.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoseg import __version__
from autoseg.atomic import atomic_write_json
from autoseg.ensembling.postprocessing import PostprocessingDecision
from autoseg.errors import PlansError
from autoseg.frozendict import FrozenDict
from autoseg.strict import check_keys, load_json

__all__ = [
    "BEST_SCHEMA_VERSION",
    "BestChoice",
    "CandidateScore",
    "Comparison",
    "load_best_choice",
]

BEST_SCHEMA_VERSION = 1


def _strict(data: Any, expected: list[str], what: str) -> dict[str, Any]:
    return dict(check_keys(what, data, expected, PlansError))


def _num(value: Any) -> float:
    """A float, with None (JSON's NaN) and non-finite values as NaN."""
    value = math.nan if value is None else float(value)
    return value if math.isfinite(value) else math.nan


def _json_num(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _pair(values: Any) -> tuple[float, float]:
    low, high = values
    return _num(low), _num(high)


@dataclass(frozen=True)
class CandidateScore:
    """The cross-validated score of one configuration or ensemble.

    Attributes:
        configs: The configuration, or the configurations whose softmax is averaged.
        score: Foreground mean of the metric over the out-of-fold cases.
        per_class: Foreground label (string) -> mean metric.
        per_region: Region name -> mean metric.
        ci95: Bootstrap 95 % interval of ``score`` (cases resampled).
        num_cases: Out-of-fold cases scored.
    """

    configs: tuple[str, ...]
    score: float
    per_class: Mapping[str, float]
    per_region: Mapping[str, float]
    ci95: tuple[float, float]
    num_cases: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "configs", tuple(str(c) for c in self.configs))
        object.__setattr__(self, "score", _num(self.score))
        for name in ("per_class", "per_region"):
            values = {str(k): _num(v) for k, v in getattr(self, name).items()}
            object.__setattr__(self, name, FrozenDict(values))
        object.__setattr__(self, "ci95", _pair(self.ci95))
        object.__setattr__(self, "num_cases", int(self.num_cases))

    @property
    def name(self) -> str:
        """``"unet3d"`` or ``"unet3d+deepmedic"``."""
        return "+".join(self.configs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "configs": list(self.configs),
            "score": _json_num(self.score),
            "per_class": {k: _json_num(v) for k, v in self.per_class.items()},
            "per_region": {k: _json_num(v) for k, v in self.per_region.items()},
            "ci95": [_json_num(v) for v in self.ci95],
            "num_cases": self.num_cases,
        }

    @classmethod
    def from_dict(cls, data: Any) -> CandidateScore:
        """Strict inverse of :meth:`to_dict` (raises PlansError on unknown/missing keys)."""
        expected = ["configs", "score", "per_class", "per_region", "ci95", "num_cases"]
        return cls(**_strict(data, expected, "candidate"))


@dataclass(frozen=True)
class Comparison:
    """Winner vs runner-up: the paired per-case difference and its bootstrap interval.

    Attributes:
        winner: Configurations of the best candidate.
        runner_up: Configurations of the second best.
        metric: Metric name (as in best.json).
        higher_is_better: False for HD95.
        mean_difference: Mean over cases of winner minus runner-up (per-case foreground mean).
        ci95: Percentile bootstrap 95 % interval of ``mean_difference``.
        ci_includes_zero: True when the interval holds 0: the win may be noise.
        n_cases: Cases where both candidates have a defined score.
        num_bootstrap: Resamples drawn.
        seed: Seed of the resampling.
    """

    winner: tuple[str, ...]
    runner_up: tuple[str, ...]
    metric: str
    higher_is_better: bool
    mean_difference: float
    ci95: tuple[float, float]
    ci_includes_zero: bool
    n_cases: int
    num_bootstrap: int
    seed: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "winner", tuple(str(c) for c in self.winner))
        object.__setattr__(self, "runner_up", tuple(str(c) for c in self.runner_up))
        object.__setattr__(self, "metric", str(self.metric))
        object.__setattr__(self, "higher_is_better", bool(self.higher_is_better))
        object.__setattr__(self, "mean_difference", _num(self.mean_difference))
        object.__setattr__(self, "ci95", _pair(self.ci95))
        object.__setattr__(self, "ci_includes_zero", bool(self.ci_includes_zero))
        for name in ("n_cases", "num_bootstrap", "seed"):
            object.__setattr__(self, name, int(getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "winner": list(self.winner),
            "runner_up": list(self.runner_up),
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "mean_difference": _json_num(self.mean_difference),
            "ci95": [_json_num(v) for v in self.ci95],
            "ci_includes_zero": self.ci_includes_zero,
            "n_cases": self.n_cases,
            "num_bootstrap": self.num_bootstrap,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Comparison:
        """Strict inverse of :meth:`to_dict` (raises PlansError on unknown/missing keys)."""
        expected = [
            "winner",
            "runner_up",
            "metric",
            "higher_is_better",
            "mean_difference",
            "ci95",
            "ci_includes_zero",
            "n_cases",
            "num_bootstrap",
            "seed",
        ]
        return cls(**_strict(data, expected, "comparison"))


@dataclass(frozen=True)
class BestChoice:
    """What ``autoseg find-best`` decided (the content of ``best.json``).

    Attributes:
        configs: Chosen configuration(s); several means their softmax is averaged.
        folds: Folds whose models prediction ensembles.
        metric: ``"dice"``, ``"iou"``, ``"nsd"`` or ``"hd95"`` (mm, lower is better).
        score: Cross-validated score of the choice, before postprocessing.
        score_postprocessed: The same with the chosen postprocessing applied.
        postprocessing: Foreground label -> keep only its largest connected component.
        postprocessing_decisions: The evidence (means before/after) per label.
        candidates: Every candidate, best first.
        comparison: Winner vs runner-up; None when there was a single candidate.
        predict_command: The exact ``autoseg predict`` command that uses this choice.
        inputs: Digests of what the choice was computed from.
    """

    configs: tuple[str, ...]
    folds: tuple[int, ...]
    metric: str
    score: float
    score_postprocessed: float
    postprocessing: Mapping[int, bool]
    postprocessing_decisions: tuple[PostprocessingDecision, ...]
    candidates: tuple[CandidateScore, ...]
    comparison: Comparison | None
    predict_command: str
    inputs: Mapping[str, str] = field(default_factory=dict)
    schema_version: int = BEST_SCHEMA_VERSION
    autoseg_version: str = __version__

    def __post_init__(self) -> None:
        object.__setattr__(self, "configs", tuple(str(c) for c in self.configs))
        object.__setattr__(self, "folds", tuple(int(f) for f in self.folds))
        object.__setattr__(self, "score", _num(self.score))
        object.__setattr__(self, "score_postprocessed", _num(self.score_postprocessed))
        rule = {
            int(k): bool(v) for k, v in sorted(self.postprocessing.items(), key=lambda i: int(i[0]))
        }
        object.__setattr__(self, "postprocessing", FrozenDict(rule))
        object.__setattr__(self, "postprocessing_decisions", tuple(self.postprocessing_decisions))
        object.__setattr__(self, "candidates", tuple(self.candidates))
        object.__setattr__(
            self, "inputs", FrozenDict({str(k): str(v) for k, v in self.inputs.items()})
        )
        object.__setattr__(self, "schema_version", int(self.schema_version))

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (label keys as strings, NaN as None)."""
        return {
            "schema_version": self.schema_version,
            "autoseg_version": self.autoseg_version,
            "configs": list(self.configs),
            "folds": list(self.folds),
            "metric": self.metric,
            "score": _json_num(self.score),
            "score_postprocessed": _json_num(self.score_postprocessed),
            "postprocessing": {str(k): v for k, v in self.postprocessing.items()},
            "postprocessing_decisions": [d.to_dict() for d in self.postprocessing_decisions],
            "candidates": [c.to_dict() for c in self.candidates],
            "comparison": None if self.comparison is None else self.comparison.to_dict(),
            "predict_command": self.predict_command,
            "inputs": dict(self.inputs),
        }

    @classmethod
    def from_dict(cls, data: Any) -> BestChoice:
        """Strict inverse of :meth:`to_dict`.

        Raises:
            PlansError: on another schema version, unknown or missing keys, bad values.
        """
        if isinstance(data, dict) and data.get("schema_version") != BEST_SCHEMA_VERSION:
            raise PlansError(
                f"best.json schema_version {data.get('schema_version')!r} is not "
                f"{BEST_SCHEMA_VERSION}; re-run 'autoseg find-best' with this autoseg version"
            )
        expected = [f for f in cls.__dataclass_fields__]
        data = _strict(data, expected, "best.json")
        try:
            decisions = tuple(
                PostprocessingDecision.from_dict(d) for d in data["postprocessing_decisions"]
            )
            comparison = data["comparison"]
            values = {
                **data,
                "postprocessing_decisions": decisions,
                "candidates": tuple(CandidateScore.from_dict(c) for c in data["candidates"]),
                "comparison": None if comparison is None else Comparison.from_dict(comparison),
            }
            return cls(**values)
        except PlansError:
            raise
        except (TypeError, ValueError, AttributeError) as err:
            raise PlansError(f"invalid best.json: {err}") from None

    def save(self, path: Path | str) -> None:
        """Write best.json atomically."""
        atomic_write_json(path, self.to_dict())


def load_best_choice(path: Path | str) -> BestChoice:
    """Read best.json.

    Raises:
        PlansError: if the file is missing (run ``autoseg find-best``), not JSON, or does not
            match the schema; the message names the file.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise PlansError("best.json not found; run 'autoseg find-best' first", path=path) from None
    try:
        return BestChoice.from_dict(load_json(text))
    except json.JSONDecodeError as err:
        raise PlansError(f"best.json is not valid JSON: {err}", path=path) from None
    except PlansError as err:
        raise PlansError(err.message, path=path) from None
