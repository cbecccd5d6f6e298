"""Time budgets: how many epochs a fold runs and how long its epochs are, in one place.

Where the epoch count comes from (:func:`initial_state`):

- ``--epochs N``: N epochs; nothing below applies.
- ``--time-budget 90m`` (:func:`autoseg.durations.parse_duration`): fitted into that budget.
- neither, off a GPU: fitted into ``cpu_default_budget_seconds`` (with a warning).
- neither, on a GPU: :data:`DEFAULT_GPU_EPOCHS` (nnU-Net's 1000).

A budget-driven count is fitted in three steps:

1. Short epochs (:func:`shorten_epochs`, after :data:`WARMUP_ITERATIONS` iterations of
   epoch 0, unless ``--iters-per-epoch`` is given): nnU-Net's epoch (250 iterations) takes
   minutes on a CPU, so a budget of a few minutes would not hold a single one. If fewer
   than :data:`MIN_BUDGET_EPOCHS` default-length epochs fit into :data:`TRAINING_SHARE` of
   the remaining budget, every epoch is shortened (to at least :data:`MIN_ITERATIONS`
   iterations) so that they do, and the validation batches shrink in proportion (unless
   ``--val-iters`` is given).
2. After the first epoch (:func:`fit_epochs`): ``epochs = 1 + floor((budget - elapsed -
   final_validation) / epoch_seconds)`` (:func:`epochs_for_budget`), where
   ``epoch_seconds`` comes from the steady iterations of the first epoch (warm-up
   excluded) plus its validation and bookkeeping time, and the final validation's duration
   (:func:`final_validation_seconds`) from the measured forward speed (seconds per output
   voxel) times the voxels the sliding window / tiling will cover.
3. Later epochs (:func:`fit_epochs` again): if they run slower than planned (a shared
   machine) the count is lowered so the fold still ends within the budget (the projected
   end overruns it by more than :data:`OVERRUN_TOLERANCE`); if they run faster while the
   schedule is still young (at most a quarter through), it is raised (when at least 20 %
   more epochs fit).

No count exceeds :data:`DEFAULT_GPU_EPOCHS`. Under torchrun rank 0 decides and shares its
plan (:func:`autoseg.trainers.distributed.share_epoch_plan`). This module imports neither
torch nor the session (only its type).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from autoseg.artefacts import read_json
from autoseg.log import get_logger
from autoseg.trainers.config import TrainConfig
from autoseg.trainers.state import TrainingState

if TYPE_CHECKING:
    from autoseg.trainers.session import Session

__all__ = [
    "DEFAULT_GPU_EPOCHS",
    "DEFAULT_ITERS_PER_EPOCH",
    "DEFAULT_VAL_ITERS",
    "EXPORT_SECONDS_PER_CASE",
    "MIN_BUDGET_EPOCHS",
    "MIN_ITERATIONS",
    "OVERRUN_TOLERANCE",
    "TRAINING_SHARE",
    "WARMUP_ITERATIONS",
    "epochs_for_budget",
    "estimate_validation_seconds",
    "final_validation_seconds",
    "fit_epochs",
    "initial_state",
    "shorten_epochs",
]

DEFAULT_GPU_EPOCHS = 1000
"""Epochs on a GPU when neither --epochs nor --time-budget is given; also the most a
time budget may choose."""
DEFAULT_ITERS_PER_EPOCH = 250
DEFAULT_VAL_ITERS = 50
MIN_BUDGET_EPOCHS = 10
"""Default-length epochs a budget must hold, else the epochs are shortened."""
MIN_ITERATIONS = 10
"""Iterations a shortened epoch keeps at least."""
WARMUP_ITERATIONS = 5
"""Iterations of epoch 0 timed before deciding whether to shorten the epochs."""
TRAINING_SHARE = 0.8
"""Share of the remaining budget assumed for training iterations (the rest: validation
batches, checkpoints, curves and the final validation)."""
OVERRUN_TOLERANCE = 1.05
"""Later epochs lower the count only when the projected end exceeds the budget by this."""
EXPORT_SECONDS_PER_CASE = 2.0
"""Allowance per validation case for resampling, export and metrics (seconds)."""
_log = get_logger(__name__)


def initial_state(config: TrainConfig, device_type: str) -> TrainingState:
    """The state a fresh fold starts from: its epoch count and where it comes from, and the
    epoch length (``--iters-per-epoch`` / ``--val-iters`` or the defaults).

    Args:
        config: The run's options.
        device_type: ``"cuda"``, ``"cpu"`` or ``"mps"`` (the device trained on).
    """
    state = _epoch_count(config, device_type)
    state.iters_per_epoch = config.iters_per_epoch or DEFAULT_ITERS_PER_EPOCH
    state.val_iters = config.val_iters or DEFAULT_VAL_ITERS
    return state


def _epoch_count(config: TrainConfig, device_type: str) -> TrainingState:
    if config.epochs is not None:
        return TrainingState(config.epochs, "--epochs")
    if config.time_budget_seconds is not None:
        return TrainingState(
            DEFAULT_GPU_EPOCHS, "--time-budget", config.time_budget_seconds, epochs_decided=False
        )
    if device_type != "cuda":
        budget = config.cpu_default_budget_seconds
        _log.warning(
            "training on the %s without --epochs or --time-budget: the number of epochs will "
            "be fitted into the default budget of %.0f minutes per fold",
            device_type.upper(),
            budget / 60,
        )
        return TrainingState(DEFAULT_GPU_EPOCHS, "cpu default budget", budget, epochs_decided=False)
    return TrainingState(DEFAULT_GPU_EPOCHS, "default")


def shorten_epochs(session: Session, durations: Sequence[float]) -> bool:
    """Shorten the epochs if the budget holds too few of them (step 1 of the module
    docstring); True when shortened.

    Args:
        session: The fold's session (its state, config and clock).
        durations: Seconds of each training iteration of epoch 0 so far.
    """
    state, config = session.state, session.config
    if state.budget_seconds is None or state.epochs_decided or config.iters_per_epoch is not None:
        return False
    per_iteration = statistics.median(durations[1:] or durations)
    remaining = state.budget_seconds - session.elapsed()
    fit = math.floor(TRAINING_SHARE * remaining / (MIN_BUDGET_EPOCHS * per_iteration))
    if fit >= state.iters_per_epoch:
        return False
    iterations = max(MIN_ITERATIONS, fit)
    ratio = iterations / state.iters_per_epoch
    if config.val_iters is None:
        state.val_iters = max(2, round(state.val_iters * ratio))
    state.iters_per_epoch = iterations
    _log.info(
        "time budget: %.2f s per iteration; epochs shortened to %d iterations (%d validation "
        "batches) so that at least %d fit",
        per_iteration,
        iterations,
        state.val_iters,
        MIN_BUDGET_EPOCHS,
    )
    return True


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


def final_validation_seconds(session: Session, seconds_per_voxel: float) -> float:
    """Expected duration of the end-of-training validation of the session's fold: the voxels
    the strategy's tiling covers in each validation case (its preprocessed shape), at the
    measured speed, times the mirrored passes, plus the export allowance."""
    if not session.config.final_validation:
        return 0.0
    plan = session.spec.config_plan
    mirroring = session.config.val_mirroring
    if mirroring is None:
        mirroring = session.device.type != "cpu"
    passes = 2 ** len(plan.augmentation.mirror_axes) if mirroring else 1
    voxels = []
    for case_id in session.spec.val_ids:
        properties = read_json(Path(session.spec.data_dir) / f"{case_id}.json") or {}
        shape = properties.get("shape_after_resample", plan.inference_patch_size)
        voxels.append(
            session.strategy.inference_voxels(plan, shape, session.config.val_step_fraction)
        )
    return estimate_validation_seconds(voxels, seconds_per_voxel, passes)


def _epoch_seconds(session: Session, iteration_seconds: float, validation_seconds: float) -> float:
    """Expected wall time of one more epoch, checkpointing and curves included."""
    state = session.state
    if not state.epochs_decided:  # after epoch 0: its steady iterations, not its warm-up
        steady = iteration_seconds * state.iters_per_epoch + validation_seconds
        seconds = min(state.history[-1].seconds, steady)
    else:  # the recent epochs (epoch 0 left out once there are others)
        seconds = statistics.fmean(r.seconds for r in (state.history[1:] or state.history)[-5:])
    return (seconds + session.save_seconds) * 1.02


def fit_epochs(
    session: Session,
    *,
    iteration_seconds: float,
    validation_seconds: float,
    seconds_per_voxel: float,
) -> bool:
    """Fit the epoch count into the budget after an epoch (steps 2 and 3 of the module
    docstring); True when the count changed (the schedule's length follows it).

    Args:
        session: The fold's session (state, config, plan, strategy, save time, schedule).
        iteration_seconds: Median duration of the epoch's training iterations.
        validation_seconds: Duration of the epoch's validation batches.
        seconds_per_voxel: Measured forward time per output voxel (validation batches).
    """
    state = session.state
    if state.budget_seconds is None or (state.finished and state.epochs_decided):
        return False
    final = final_validation_seconds(session, seconds_per_voxel)
    epoch_seconds = _epoch_seconds(session, iteration_seconds, validation_seconds)
    total = epochs_for_budget(
        state.budget_seconds,
        state.elapsed_seconds,
        state.epoch,
        epoch_seconds,
        final,
        max_epochs=DEFAULT_GPU_EPOCHS,
    )
    reason = ""
    if state.epochs_decided:
        remaining = state.total_epochs - state.epoch
        projected = state.elapsed_seconds + remaining * epoch_seconds + final
        early = state.epoch <= max(2, state.total_epochs // 4)
        if projected > state.budget_seconds * OVERRUN_TOLERANCE and total < state.total_epochs:
            reason = " (lowered: epochs run slower than planned)"
        elif early and total >= max(state.total_epochs + 1, 1.2 * state.total_epochs):
            reason = " (raised: epochs run faster than planned)"
        else:
            return False
    _log.info(
        "time budget %.0f min (%s): %.1f s per epoch, final validation ~%.0f s, %.0f s used "
        "-> %d epochs%s",
        state.budget_seconds / 60,
        state.epochs_source,
        epoch_seconds,
        final,
        state.elapsed_seconds,
        total,
        reason,
    )
    state.total_epochs, state.epochs_decided = total, True
    session.schedule.total_epochs = total
    return True
