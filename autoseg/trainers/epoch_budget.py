"""Fit a fold's number of epochs into its time budget (see :mod:`autoseg.trainers.time_budget`)."""

from __future__ import annotations

import statistics
from pathlib import Path

from autoseg.artefacts import read_json
from autoseg.log import get_logger
from autoseg.trainers.session import DEFAULT_GPU_EPOCHS, Session
from autoseg.trainers.steps import EpochTimings, ValidationResult
from autoseg.trainers.time_budget import epochs_for_budget, estimate_validation_seconds

__all__ = ["OVERRUN_TOLERANCE", "final_validation_seconds", "fit_epochs"]

OVERRUN_TOLERANCE = 1.05
"""Later epochs lower the count only when the projected end exceeds the budget by this."""
_log = get_logger(__name__)


def final_validation_seconds(session: Session, seconds_per_voxel: float) -> float:
    """Expected duration of the end-of-training validation of the session's fold."""
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


def _epoch_seconds(session: Session, timings: EpochTimings, validation: ValidationResult) -> float:
    """Expected wall time of one more epoch, checkpointing and curves included."""
    state = session.state
    if not state.epochs_decided:  # after epoch 0: its steady iterations, not its warm-up
        steady = timings.median_iteration_seconds * state.iters_per_epoch + validation.seconds
        seconds = min(state.history[-1].seconds, steady)
    else:  # the recent epochs (epoch 0 left out once there are others)
        seconds = statistics.fmean(r.seconds for r in (state.history[1:] or state.history)[-5:])
    return (seconds + session.save_seconds) * 1.02


def fit_epochs(session: Session, timings: EpochTimings, validation: ValidationResult) -> bool:
    """Fit the epoch count into the budget: after the first epoch from its speed; later
    lowered when the epochs run slower than planned (the end would overrun the budget by more
    than 5 %), or raised while still early in the schedule (at most a quarter through) when
    they run faster (at least 20 % more epochs fit). Returns True when the count changed."""
    state = session.state
    if state.budget_seconds is None or (state.finished and state.epochs_decided):
        return False
    final = final_validation_seconds(session, validation.seconds_per_voxel)
    epoch_seconds = _epoch_seconds(session, timings, validation)
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
