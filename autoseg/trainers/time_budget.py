"""Time budgets: the promise that a fold ends on time, and the schedule's progress, in one place.

Where a fold's length comes from (:func:`initial_state`):

- ``--epochs N``: N epochs; the learning rate follows the epochs (nothing below applies).
- ``--time-budget 90m`` (:func:`autoseg.durations.parse_duration`): the fold, set-up and
  final validation included, ends at the budget.
- neither, off a GPU: the same, with ``cpu_default_budget_seconds`` (and a warning).
- neither, on a GPU: :data:`DEFAULT_GPU_EPOCHS` (nnU-Net's 1000).

With a budget, time drives everything:

1. **The schedule follows elapsed time.** The schedule's progress (:func:`schedule_progress`)
   is the share of the training time used, ``elapsed / (budget - reserve - epoch end)``
   (the end of the last epoch: its validation batches and checkpoint), set before every
   iteration, so the learning rate decays fully by the end whatever the machine's speed does
   in between: time lost to a busy machine costs iterations, not the schedule.
2. **Training stops when time is up** (:func:`out_of_time`): before each iteration, when one
   more iteration, the epoch's validation batches and checkpoint, and the reserve would pass
   the budget. The last epoch may be short.
3. **The reserve** is the expected duration of the final validation and the final
   checkpoint. After the first epoch of a run, one validation case (the one needing the
   fewest network outputs) is validated for real, exactly as the final validation will do
   it (kept in :class:`~autoseg.trainers.session.BudgetTracker`); the other cases are
   scaled from it by the output voxels their tiling covers, and the whole by the machine's
   current speed (the median iteration time now against then). Until then a rough
   estimate from the validation batches serves. When fewer than :data:`REPROBE_EPOCHS`
   epochs are left, the case is validated once more and the lower of the two measurements
   (each against the iteration time of its moment) is kept: a probe slowed by a passing
   burst of other work, or by one-off costs, would otherwise end training early.
4. **Epoch length**: epochs are the unit of checkpoints, pseudo-Dice and curves. nnU-Net's
   epoch (250 iterations) takes minutes on a CPU, so after :data:`WARMUP_ITERATIONS`
   iterations of epoch 0 (unless ``--iters-per-epoch`` is given) every epoch is shortened
   (to at least :data:`MIN_ITERATIONS`) if fewer than :data:`MIN_BUDGET_EPOCHS` would fit
   into :data:`TRAINING_SHARE` of the remaining budget (:func:`shorten_epochs`); the
   validation batches shrink in proportion (unless ``--val-iters`` is given).

The epoch count of a budget is an estimate, updated after every epoch, for the logs and
curves only; no budget runs more than :data:`DEFAULT_GPU_EPOCHS` epochs. Under torchrun rank
0 decides and shares its plan (:mod:`autoseg.trainers.distributed`). This module imports
neither torch nor the session (only its type).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING

from autoseg.log import get_logger
from autoseg.trainers.config import TrainConfig
from autoseg.trainers.state import TrainingState
from autoseg.trainers.validation import (
    final_validation_mirrors,
    lower_median_case,
    validation_shapes,
)

if TYPE_CHECKING:
    from autoseg.trainers.session import BudgetTracker, Session

__all__ = [
    "DEFAULT_GPU_EPOCHS",
    "DEFAULT_ITERS_PER_EPOCH",
    "DEFAULT_VAL_ITERS",
    "MIN_BUDGET_EPOCHS",
    "MIN_ITERATIONS",
    "REPROBE_EPOCHS",
    "RESERVE_MARGIN",
    "TRAINING_SHARE",
    "WARMUP_ITERATIONS",
    "after_epoch",
    "initial_state",
    "log_stop",
    "out_of_time",
    "schedule_progress",
    "shorten_epochs",
]

DEFAULT_GPU_EPOCHS = 1000
"""Epochs on a GPU when neither --epochs nor --time-budget is given; also the most a
time budget may run."""
DEFAULT_ITERS_PER_EPOCH = 250
DEFAULT_VAL_ITERS = 50
MIN_BUDGET_EPOCHS = 10
"""Default-length epochs a budget must hold, else the epochs are shortened."""
MIN_ITERATIONS = 10
"""Iterations a shortened epoch keeps at least."""
WARMUP_ITERATIONS = 5
"""Iterations of epoch 0 timed before deciding whether to shorten the epochs."""
TRAINING_SHARE = 0.8
"""Share of the remaining budget assumed for training iterations when shortening epochs."""
RESERVE_MARGIN = 1.05
"""The reserve is the estimated final validation and last checkpoint times this."""
REPROBE_EPOCHS = 3
"""With fewer epochs than this left, the probe is repeated once (step 3)."""
_ROUGH_EXPORT_SECONDS = 0.5
"""Per validation case, before the probe has measured one: resampling, export, metrics."""
_log = get_logger(__name__)


def initial_state(config: TrainConfig, device_type: str) -> TrainingState:
    """The state a fresh fold starts from: its length and where it comes from, and the epoch
    length (``--iters-per-epoch`` / ``--val-iters`` or the defaults).

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
            "training on the %s without --epochs or --time-budget: the fold will be fitted "
            "into the default budget of %.0f minutes",
            device_type.upper(),
            budget / 60,
        )
        return TrainingState(DEFAULT_GPU_EPOCHS, "cpu default budget", budget, epochs_decided=False)
    return TrainingState(DEFAULT_GPU_EPOCHS, "default")


def shorten_epochs(session: Session, durations: Sequence[float]) -> bool:
    """Shorten the epochs if the budget holds too few of them (step 4 of the module
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


def schedule_progress(session: Session, iteration: int) -> float:
    """How far through its schedule the fold is before ``iteration`` of the current epoch:
    the epochs done (with a budget, also the training time used, never less than before in
    this run), in [0, 1]."""
    state = session.state
    epochs = (state.epoch + iteration / max(state.iters_per_epoch, 1)) / max(state.total_epochs, 1)
    if state.budget_seconds is None:
        return min(1.0, epochs)
    budget = session.budget
    training = state.budget_seconds - budget.reserve_seconds - budget.closing_seconds
    spent = session.elapsed() / training if training > 0 else 1.0
    # never backwards, when a quieter machine shrinks the estimates
    budget.progress = min(1.0, max(spent, epochs, budget.progress))
    return budget.progress


def out_of_time(session: Session, iteration_seconds: float) -> bool:
    """With a budget: whether one more iteration (of ``iteration_seconds``), the epoch's
    validation batches and checkpoint, and the reserve would pass the budget."""
    state = session.state
    if state.budget_seconds is None:
        return False
    budget = session.budget
    needed = iteration_seconds + budget.closing_seconds + budget.reserve_seconds
    return session.elapsed() + needed > state.budget_seconds


def log_stop(session: Session, iteration_seconds: float) -> None:
    """Say, when the budget stops training, what it kept back (rule 2)."""
    state, budget = session.state, session.budget
    _log.info(
        "time budget: training stops at %.0f s of %.0f s (next iteration ~%.2f s, epoch end "
        "~%.1f s, final validation and checkpoint ~%.1f s)",
        session.elapsed(),
        state.budget_seconds or 0.0,
        iteration_seconds,
        budget.closing_seconds,
        budget.reserve_seconds,
    )


def after_epoch(
    session: Session,
    *,
    iteration_seconds: float,
    validation_seconds: float,
    seconds_per_voxel: float,
) -> bool:
    """After an epoch (with a budget): measure the final validation once, update the reserve
    and the expected number of epochs, decide whether the fold is over. True when the
    expected number of epochs changed (it is then logged)."""
    state, budget = session.state, session.budget
    if state.budget_seconds is None:
        return False
    budget.iteration_seconds.append(iteration_seconds)
    budget.saves.append(session.save_seconds)
    budget.closings.append(validation_seconds + session.save_seconds)
    budget.closing_seconds = max(budget.closings[-3:]) * RESERVE_MARGIN
    if budget.probe is not None and budget.probe_case_seconds is None:
        _probe_validation(session)
    budget.reserve_seconds = _reserve(session, seconds_per_voxel)
    remaining = state.budget_seconds - session.elapsed() - budget.reserve_seconds
    epoch_seconds = _epoch_seconds(session)
    if _reprobe_due(budget, remaining, epoch_seconds):
        _reprobe_validation(session)
        budget.reserve_seconds = _reserve(session, seconds_per_voxel)
        remaining = state.budget_seconds - session.elapsed() - budget.reserve_seconds
    more = max(0, math.floor(remaining / epoch_seconds)) if epoch_seconds > 0 else 0
    if state.out_of_time or remaining <= budget.closing_seconds:
        state.out_of_time, more = True, 0
    total = min(DEFAULT_GPU_EPOCHS, state.epoch + more)
    changed = not state.epochs_decided or abs(total - state.total_epochs) > max(
        1, 0.1 * state.total_epochs
    )
    if state.epoch >= DEFAULT_GPU_EPOCHS:
        state.out_of_time = True
    if changed:
        _log.info(
            "time budget %.0f min (%s): %.1f s per epoch, final validation ~%.0f s, %.0f s "
            "used -> about %d epochs",
            state.budget_seconds / 60,
            state.epochs_source,
            epoch_seconds,
            budget.reserve_seconds,
            session.elapsed(),
            max(total, state.epoch),
        )
    state.total_epochs, state.epochs_decided = max(total, state.epoch, 1), True
    _log.debug(
        "time budget: %.1f s used, reserve %.1f s, epoch end %.1f s, %.2f s per iteration%s",
        session.elapsed(),
        budget.reserve_seconds,
        budget.closing_seconds,
        iteration_seconds,
        ", out of time" if state.out_of_time else "",
    )
    return changed


def _epoch_seconds(session: Session) -> float:
    """Expected duration of one more full epoch, from this run's recent epochs."""
    budget = session.budget
    iteration = budget.recent_iteration_seconds()
    if not math.isfinite(iteration):
        return math.nan
    return iteration * session.state.iters_per_epoch + budget.closing_seconds


def _probe_validation(session: Session) -> None:
    """Validate the median-sized validation case (the lower median) for real and keep its
    time (step 3). The time is scaled to every case by its output voxels; the smallest
    case, probed before, overestimated the rest, because its fixed costs (reading, export)
    weigh most per voxel: DeepMedic on Hippocampus reserved 72-80 s for a validation that
    took 45-47 s."""
    budget = session.budget
    budget.case_voxels = _case_voxels(session)
    if not budget.case_voxels or budget.probe is None:
        budget.probe = None
        return
    case_id = lower_median_case(budget.case_voxels)
    budget.probe_case = case_id
    budget.probe_case_seconds = budget.probe(case_id)
    budget.probe_voxels = budget.case_voxels[case_id]
    budget.probe_iteration_seconds = budget.recent_iteration_seconds()
    _log.info(
        "time budget: validating %s took %.2f s; %d validation cases will take ~%.0f s",
        case_id,
        budget.probe_case_seconds,
        len(budget.case_voxels),
        _probed_seconds(budget, 1.0),
    )


def _reprobe_due(budget: BudgetTracker, remaining: float, epoch_seconds: float) -> bool:
    """Whether to repeat the probe now: once, when fewer than :data:`REPROBE_EPOCHS` epochs
    of training are left."""
    if budget.reprobed or budget.probe is None or budget.probe_case is None:
        return False
    return math.isfinite(epoch_seconds) and remaining < REPROBE_EPOCHS * epoch_seconds


def _reprobe_validation(session: Session) -> None:
    """Validate the probe's case again and keep the lower of the two measurements, each
    taken against the median iteration time of its moment (step 3)."""
    budget = session.budget
    assert budget.probe is not None and budget.probe_case is not None
    assert budget.probe_case_seconds is not None
    budget.reprobed = True
    seconds = budget.probe(budget.probe_case)
    now, then = budget.recent_iteration_seconds(), budget.probe_iteration_seconds
    lower = seconds * then < budget.probe_case_seconds * now  # seconds per iteration-time
    _log.info(
        "time budget: validating %s again took %.2f s (first %.2f s); keeping the %s",
        budget.probe_case,
        seconds,
        budget.probe_case_seconds,
        "new measurement" if lower else "first",
    )
    if lower:
        budget.probe_case_seconds, budget.probe_iteration_seconds = seconds, now


def _case_voxels(session: Session) -> dict[str, int]:
    """Output voxels the final validation's tiling computes, per validation case."""
    plan = session.spec.config_plan
    return {
        case_id: session.strategy.inference_voxels(plan, shape, session.config.val_step_fraction)
        for case_id, shape in validation_shapes(session.spec).items()
    }


def _probed_seconds(budget: BudgetTracker, load: float) -> float:
    assert budget.probe_case_seconds is not None
    per_voxel = budget.probe_case_seconds / max(budget.probe_voxels, 1)
    return per_voxel * sum(budget.case_voxels.values()) * load


def _reserve(session: Session, seconds_per_voxel: float) -> float:
    """Expected seconds of the final validation and the last checkpoint (step 3)."""
    budget = session.budget
    validation = 0.0
    if budget.probe_case_seconds is not None:
        now, then = budget.recent_iteration_seconds(), budget.probe_iteration_seconds
        load = now / then if then > 0 and math.isfinite(now / then) else 1.0
        validation = _probed_seconds(budget, min(max(load, 0.5), 4.0))
    elif budget.probe is not None:  # rough, until the probe has run
        plan = session.spec.config_plan
        mirrored = final_validation_mirrors(session.spec, session.config, session.device.type)
        passes = 2 ** len(plan.augmentation.mirror_axes) if mirrored else 1
        voxels = _case_voxels(session).values()
        forward = sum(voxels) * seconds_per_voxel * passes
        validation = forward + _ROUGH_EXPORT_SECONDS * len(voxels)
    closing = budget.recent_save_seconds() + session.plot_seconds  # last checkpoint, curves
    return (validation + closing) * RESERVE_MARGIN
