"""Case-level bootstrap confidence intervals (percentile method, vectorised, seeded).

Cases are resampled with replacement ``num_bootstrap`` times; the statistic is recomputed on
each resample and the 2.5th and 97.5th percentiles (numpy's linear interpolation) give the
95 % interval. Resamples are drawn in blocks so memory stays bounded for large datasets; the
same inputs and seed always give the same interval.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["PairedDifference", "bootstrap_score_ci", "paired_bootstrap"]

_BLOCK_ELEMENTS = 1 << 22  # resampled values held at once (~32 MB of float64)


@dataclass(frozen=True)
class PairedDifference:
    """Mean per-case difference ``a - b`` and its bootstrap confidence interval.

    Attributes:
        mean_difference: Mean over the paired cases of ``a - b`` (NaN when none).
        ci_low: Lower bound of the interval.
        ci_high: Upper bound of the interval.
        n_cases: Cases where both values are defined (the others are left out).
    """

    mean_difference: float
    ci_low: float
    ci_high: float
    n_cases: int

    @property
    def ci_includes_zero(self) -> bool:
        """True when 0 lies inside the interval (the difference may be noise), or it is NaN."""
        if math.isnan(self.ci_low) or math.isnan(self.ci_high):
            return True
        return self.ci_low <= 0.0 <= self.ci_high


def _resample_blocks(n: int, width: int, num_bootstrap: int, seed: int) -> Iterator[np.ndarray]:
    """Index arrays (block x n) of cases drawn with replacement, ``num_bootstrap`` rows in all.

    ``width`` is the number of values per case the statistic gathers (bounds each block).
    """
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_ELEMENTS // max(n * width, 1))
    done = 0
    while done < num_bootstrap:
        rows = min(block, num_bootstrap - done)
        yield rng.integers(0, n, size=(rows, n))
        done += rows


def _percentile_ci(
    n: int,
    width: int,
    statistic: Callable[[np.ndarray], np.ndarray],
    num_bootstrap: int,
    seed: int,
    confidence: float,
) -> tuple[float, float]:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence=}")
    if num_bootstrap < 1:
        raise ValueError(f"num_bootstrap must be >= 1, got {num_bootstrap=}")
    if n == 0:
        return math.nan, math.nan
    values = np.concatenate(
        [statistic(indices) for indices in _resample_blocks(n, width, num_bootstrap, seed)]
    )
    values = values[~np.isnan(values)]
    if values.size == 0:
        return math.nan, math.nan
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def paired_bootstrap(
    a: np.ndarray,
    b: np.ndarray,
    *,
    num_bootstrap: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> PairedDifference:
    """Bootstrap the mean of the paired per-case differences ``a - b``.

    Args:
        a: Per-case scores of one candidate (1D; NaN = undefined for that case).
        b: Per-case scores of the other, same cases in the same order.
        num_bootstrap: Resamples (>= 1).
        seed: Seed of the resampling generator.
        confidence: Coverage of the interval (0.95 gives the 2.5-97.5 percentiles).

    Returns:
        The mean difference, its interval and the number of cases where both are defined.

    Raises:
        ValueError: if ``a`` and ``b`` differ in shape or are not 1D, or on bad settings.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"expected two 1D arrays of one length, got {a.shape} and {b.shape}")
    diff = (a - b)[~(np.isnan(a) | np.isnan(b))]
    mean = float(diff.mean()) if diff.size else math.nan
    low, high = _percentile_ci(
        diff.size, 1, lambda idx: diff[idx].mean(axis=1), num_bootstrap, seed, confidence
    )
    return PairedDifference(mean, low, high, int(diff.size))


def bootstrap_score_ci(
    scores: np.ndarray, *, num_bootstrap: int = 2000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float]:
    """Bootstrap interval of a cross-validation score computed from a cases x classes table.

    The score is the mean over classes of each class's NaN-aware mean over cases (what
    :func:`autoseg.evaluation.summarize` calls the foreground mean); resampling draws whole
    cases, so each case keeps its classes together.

    Args:
        scores: Metric per case (rows) and foreground class (columns); NaN = undefined.
        num_bootstrap: Resamples (>= 1).
        seed: Seed of the resampling generator.
        confidence: Coverage of the interval.

    Returns:
        ``(low, high)``; NaN when there are no cases or no defined value.

    Raises:
        ValueError: if ``scores`` is not 2D, or on bad settings.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"expected a cases x classes table, got shape {scores.shape}")

    def statistic(indices: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN
            per_class = np.nanmean(scores[indices], axis=1)
            return np.asarray(np.nanmean(per_class, axis=1))

    return _percentile_ci(
        scores.shape[0], max(scores.shape[1], 1), statistic, num_bootstrap, seed, confidence
    )
