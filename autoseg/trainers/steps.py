"""One epoch's training iterations and validation batches (pure steps over a Session).

Under torchrun the losses are averaged and the pseudo-Dice counts summed over the ranks, and
a shortened epoch length is rank 0's (see :mod:`autoseg.trainers.distributed`), so every rank
records the same epoch and runs the same number of iterations.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from dataclasses import dataclass

import torch

from autoseg.log import Progress
from autoseg.precision import autocast_context
from autoseg.trainers.distributed import share_epoch_plan, share_iteration
from autoseg.trainers.session import Session
from autoseg.trainers.strategy import confusion_counts
from autoseg.trainers.time_budget import (
    WARMUP_ITERATIONS,
    log_stop,
    out_of_time,
    schedule_progress,
    shorten_epochs,
)

__all__ = [
    "EpochTimings",
    "ValidationResult",
    "epoch_label",
    "pseudo_dice",
    "train_epoch",
    "validate_epoch",
]


@dataclass(frozen=True)
class EpochTimings:
    """What an epoch's training iterations did (seconds; NaN without iterations).

    Attributes:
        loss: Mean training loss.
        median_iteration_seconds: Median duration of an iteration.
        train_seconds: Duration of the training iterations.
        iterations: Iterations run (fewer than the epoch length when the budget ran out).
        lr: Learning rate of the first iteration.
    """

    loss: float
    median_iteration_seconds: float
    train_seconds: float
    iterations: int = 0
    lr: float = math.nan


@dataclass(frozen=True)
class ValidationResult:
    """The validation batches of an epoch.

    Attributes:
        loss: Mean loss of the full-resolution output.
        counts: (tp, fp, fn) per foreground class ((K - 1)×3) or region (R×3), summed over
            the batches; ignore-label voxels are not counted.
        seconds: Duration of the validation batches (loading included).
        seconds_per_voxel: Forward time per output voxel (eval mode), for time estimates.
    """

    loss: float
    counts: torch.Tensor
    seconds: float
    seconds_per_voxel: float


def _autocast(session: Session) -> contextlib.AbstractContextManager[object]:
    return autocast_context(session.amp, session.device.type)  # type: ignore[no-any-return]


def epoch_label(session: Session, epoch: int) -> str:
    """``unet3d fold 0 epoch 3/40`` (1-based; no total while a time budget has not fitted
    the count yet, ``~`` while it is an estimate that may still change)."""
    state = session.state
    name = f"{session.spec.config_name} fold {session.spec.fold} epoch {epoch + 1}"
    if not state.epochs_decided:
        return name
    approximate = "~" if state.budget_seconds is not None else ""
    return f"{name}/{approximate}{state.total_epochs}"


def _inputs(session: Session, inputs: object) -> object:
    if session.resolved["channels_last"] and isinstance(inputs, torch.Tensor):
        return inputs.contiguous(memory_format=torch.channels_last_3d)
    return inputs


def train_step(session: Session, inputs: object, targets: list[torch.Tensor]) -> float:
    """One optimiser step (AMP + grad scaling on CUDA, gradient clipping); returns the loss."""
    session.optimizer.zero_grad(set_to_none=True)
    with _autocast(session):
        outputs = session.strategy.forward(session.network, _inputs(session, inputs))
        loss = session.loss(outputs, targets)
    clip = session.config.grad_clip_norm
    session.scaler.scale(loss).backward()
    if clip is not None:
        session.scaler.unscale_(session.optimizer)
        torch.nn.utils.clip_grad_norm_(session.module.parameters(), clip)
    session.scaler.step(session.optimizer)
    session.scaler.update()
    return float(loss.detach())


def _next_iteration(session: Session, done: int, durations: list[float]) -> float | None:
    """The learning rate of the epoch's next iteration, or None when the budget is over
    (the first iteration of a run always runs). Rank 0 decides under torchrun."""
    state = session.state
    # the next iteration: as slow as the last one, or the recent median if that is slower
    expected = max(statistics.median(durations[-10:]), durations[-1]) if durations else 0.0
    first_of_run = done == 0 and not state.history
    stop = not first_of_run and out_of_time(session, expected)
    progress, stop = share_iteration(session.dist, schedule_progress(session, done), stop)
    if stop:
        state.out_of_time = True
        log_stop(session, expected)
        return None
    return session.schedule.set_progress(progress)


def train_epoch(session: Session, epoch: int) -> EpochTimings:
    """The epoch's training iterations in train mode, the learning rate set before each from
    the schedule's progress (a short time budget may shorten the epochs after the first few
    iterations of epoch 0; the end of the budget may cut the epoch short)."""
    session.network.train()
    losses: list[float] = []
    durations: list[float] = []
    start = time.perf_counter()
    plan = session.spec.config_plan
    first_lr = math.nan
    label = epoch_label(session, epoch)
    shown = session.dist.is_main  # one display under torchrun
    with Progress(label, session.state.iters_per_epoch, enabled=shown, summary=False) as bar:
        while len(losses) < session.state.iters_per_epoch:
            lr = _next_iteration(session, len(losses), durations)
            if lr is None:
                break
            first_lr = lr if not losses else first_lr
            if session.threads is not None:
                session.threads.before()
            tick = time.perf_counter()
            batch = next(session.train_batches)
            inputs, targets = session.strategy.to_device(batch, plan, session.device)
            losses.append(train_step(session, inputs, targets))
            durations.append(time.perf_counter() - tick)
            if session.threads is not None:
                session.threads.after(durations[-1])
            if len(losses) == WARMUP_ITERATIONS and share_epoch_plan(
                session.dist, session.state, shorten_epochs(session, durations)
            ):
                bar.set_total(session.state.iters_per_epoch)
            bar.update()
    finite = [v for v in losses if math.isfinite(v)]
    loss = statistics.fmean(finite) if finite else math.nan
    return EpochTimings(
        loss=session.dist.mean(loss, "averaging the training loss"),
        median_iteration_seconds=statistics.median(durations) if durations else math.nan,
        train_seconds=time.perf_counter() - start,
        iterations=len(losses),
        lr=first_lr,
    )


@torch.no_grad()
def validate_epoch(session: Session) -> ValidationResult:
    """``val_iters`` validation batches in eval mode: loss and pseudo-Dice counts."""
    session.network.eval()
    plan, plans = session.spec.config_plan, session.spec.plans
    classes = plan.network.num_classes
    regions, ignore = plans.training_regions, plans.ignore_label
    counts = torch.zeros((len(regions) or classes - 1, 3), dtype=torch.int64)
    losses, forward_seconds, voxels = [], 0.0, 0
    start = time.perf_counter()
    label = f"{epoch_label(session, session.state.epoch)} validation"
    main = session.dist.is_main  # one display under torchrun
    with Progress(label, session.state.val_iters, unit="batch", enabled=main, summary=False) as bar:
        for _ in range(session.state.val_iters):
            batch = next(session.val_batches)
            inputs, targets = session.strategy.to_device(batch, plan, session.device)
            tick = time.perf_counter()
            with _autocast(session):
                logits = session.strategy.forward(session.network, _inputs(session, inputs))[0]
                loss = session.val_loss(logits, targets[0])
            counts += confusion_counts(logits, targets[0], classes, regions, ignore)  # syncs
            forward_seconds += time.perf_counter() - tick
            voxels += targets[0].numel()
            losses.append(float(loss))
            bar.update()
    return ValidationResult(
        loss=session.dist.mean(statistics.fmean(losses), "averaging the validation loss"),
        counts=session.dist.all_reduce_sum(counts, "summing the pseudo-Dice counts"),
        seconds=time.perf_counter() - start,
        seconds_per_voxel=forward_seconds / max(voxels, 1),
    )


def pseudo_dice(counts: torch.Tensor) -> tuple[float, ...]:
    """Dice per foreground class (or region) from (tp, fp, fn) counts: ``2tp / (2tp + fp +
    fn)``; NaN where a class is in neither the reference nor the prediction."""
    result = []
    for tp, fp, fn in counts.tolist():
        denominator = 2 * tp + fp + fn
        result.append(2 * tp / denominator if denominator else math.nan)
    return tuple(result)
