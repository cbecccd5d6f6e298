"""Time budgets: parse ``90m`` / ``2h`` / ``45s``, and fit the number of epochs into a budget.

After the first epoch, ``epochs = 1 + floor((budget - elapsed - final_validation) /
epoch_seconds)``, where ``epoch_seconds`` is measured from the steady iterations of the
first epoch (warm-up excluded) plus its validation and bookkeeping time, and the final
validation time is estimated from the measured forward speed (seconds per output voxel)
times the voxels the sliding window / tiling will cover. If later epochs run slower than
planned (a shared machine), the count is lowered so the fold still ends within the budget;
if they run faster while the schedule is still young, it is raised
(:mod:`autoseg.trainers.epoch_budget`). Epochs too long for a short budget are shortened
first (:mod:`autoseg.trainers.short_epochs`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from autoseg.errors import ConfigError

__all__ = [
    "EXPORT_SECONDS_PER_CASE",
    "EpochPlan",
    "epochs_for_budget",
    "estimate_validation_seconds",
    "parse_duration",
]

EXPORT_SECONDS_PER_CASE = 2.0
"""Allowance per validation case for resampling, export and metrics (seconds)."""
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``90m``, ``2h``, ``45s``, ``1h30m`` or ``1.5h``.

    Raises:
        ConfigError: if the text is not a positive duration with units (s, m, h, d).
    """
    value = str(text).strip().lower().replace(" ", "")
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise ConfigError(
            f"invalid duration {text!r}; expected a number with a unit, e.g. 90m, 2h, 45s, 1h30m"
        )
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ConfigError(f"duration must be positive, got {text!r}")
    return seconds


@dataclass(frozen=True)
class EpochPlan:
    """How many epochs a fold runs, and why.

    Attributes:
        epochs: Total number of epochs.
        source: "--epochs", "--time-budget", "cpu default budget" or "default".
        budget_seconds: The wall-clock budget, when the count follows one.
        decided: False until a budget-driven count has been fitted (after the first epoch).
    """

    epochs: int
    source: str
    budget_seconds: float | None = None
    decided: bool = True


def epochs_for_budget(
    budget_seconds: float,
    elapsed_seconds: float,
    epochs_done: int,
    epoch_seconds: float,
    final_validation_seconds: float,
    *,
    max_epochs: int,
) -> int:
    """Total epochs that fit: those done plus as many more as the remaining time allows.

    Args:
        budget_seconds: The fold's wall-clock budget.
        elapsed_seconds: Time spent so far (set-up and the epochs done).
        epochs_done: Epochs already run (they count in the total).
        epoch_seconds: Expected duration of one more epoch.
        final_validation_seconds: Expected duration of the end-of-training validation.
        max_epochs: Upper bound on the total.

    Returns:
        A total in ``[max(1, epochs_done), max_epochs]``.
    """
    remaining = budget_seconds - elapsed_seconds - final_validation_seconds
    more = math.floor(remaining / epoch_seconds) if epoch_seconds > 0 else max_epochs
    return int(min(max_epochs, max(1, epochs_done, epochs_done + more)))


def estimate_validation_seconds(
    covered_voxels: Sequence[int], seconds_per_voxel: float, mirror_passes: int
) -> float:
    """Expected duration of the end-of-training validation.

    Args:
        covered_voxels: Per validation case, the output voxels its tiling computes.
        seconds_per_voxel: Measured forward time per output voxel (validation batches).
        mirror_passes: Forward passes per window (8 with mirroring on three axes, else 1).
    """
    forward = sum(covered_voxels) * seconds_per_voxel * mirror_passes
    return float(forward + EXPORT_SECONDS_PER_CASE * len(covered_voxels))
