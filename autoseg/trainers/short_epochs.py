"""Shorter epochs for short time budgets.

nnU-Net's epoch (250 iterations) takes minutes on a CPU; a budget of a few minutes would not
hold a single one, leaving no schedule, no checkpoints and no learning curve. When a time
budget is set and ``--iters-per-epoch`` is not, the speed of the first few iterations decides:
if fewer than :data:`MIN_BUDGET_EPOCHS` default-length epochs fit in the budget, every epoch
is shortened (to at least :data:`MIN_ITERATIONS` iterations) so that they do, and the
validation batches shrink in proportion (unless ``--val-iters`` is given). The epoch count is
then fitted after the first epoch as usual (:mod:`autoseg.trainers.epoch_budget`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING

from autoseg.log import get_logger

if TYPE_CHECKING:
    from autoseg.trainers.session import Session

__all__ = ["MIN_BUDGET_EPOCHS", "MIN_ITERATIONS", "WARMUP_ITERATIONS", "shorten_epochs"]

MIN_BUDGET_EPOCHS = 10
MIN_ITERATIONS = 10
WARMUP_ITERATIONS = 5
TRAINING_SHARE = 0.8
"""Share of the remaining budget assumed for training iterations (the rest: validation
batches, checkpoints, curves and the final validation)."""
_log = get_logger(__name__)


def shorten_epochs(session: Session, durations: Sequence[float]) -> bool:
    """Shorten the epochs if the budget holds too few of them; True when shortened."""
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
