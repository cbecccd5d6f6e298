"""``train_fold``: the training loop shared by both network families.

Skeleton (each step a plain function; per-family parts come from the session's strategy)::

    action, checkpoint = prepare_fold_dir(...)     # fresh / resume / validate-only / skip
    session = open_session(...)                    # network, optimiser, schedule, loaders
    while not session.state.finished:
        run_epoch(session, ...)                    # train (lr from the schedule's progress),
                                                   # validation batches, the time budget,
                                                   # checkpoint, log.jsonl, progress.png
    save checkpoint_final.pt
    validate_cases(...)                            # full inference on the validation cases

Files in ``results/<config>/fold_<k>/``: ``checkpoint_{latest,best,final}.pt``, ``log.jsonl``,
``progress.png``, ``train_config.json``, ``validation/`` (see
:mod:`autoseg.trainers.validation`) and, with ``--tensorboard``, ``tensorboard/``. Under
torchrun only rank 0 writes them and runs the final validation; the others wait for it
(:mod:`autoseg.trainers.distributed`).
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import torch

from autoseg.artefacts import is_current
from autoseg.atomic import atomic_write_json
from autoseg.data.dataset import Dataset
from autoseg.errors import ConfigError
from autoseg.inference.checkpoint import (
    LoadedCheckpoint,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from autoseg.leftovers import clean_temporaries
from autoseg.locking import FileLock
from autoseg.log import get_logger
from autoseg.precision import use_autocast
from autoseg.trainers.config import TrainConfig
from autoseg.trainers.device import select_device
from autoseg.trainers.distributed import FINAL_WAIT_SECONDS, DistContext, share_epoch_plan
from autoseg.trainers.history import EpochRecord, append_record, plot_progress, rewrite_log
from autoseg.trainers.resume import resume_config
from autoseg.trainers.session import FoldSpec, Session
from autoseg.trainers.session_setup import open_session
from autoseg.trainers.state import ema_momentum
from autoseg.trainers.steps import pseudo_dice, train_epoch, validate_epoch
from autoseg.trainers.time_budget import after_epoch
from autoseg.trainers.validation import (
    ValidationOptions,
    checkpoint_inputs,
    final_validation_mirrors,
    validate_case,
    validate_cases,
)
from autoseg.workspace import FoldPaths

__all__ = ["EpochCallback", "FoldResult", "prepare_fold_dir", "run_epoch", "train_fold"]

_log = get_logger(__name__)
_T = TypeVar("_T")
PLOT_EVERY_SECONDS = 30.0
"""progress.png is redrawn after an epoch at most this often (a drawing costs ~0.5 s of a
CPU, against epochs of a few seconds in short CPU runs), and always after the last one."""

EpochCallback = Callable[[Session], None]
"""Called after every epoch with the fold's session (read its ``spec`` and ``state``; do not
modify it). An exception it raises stops the fold (e.g. ``optuna.TrialPruned``)."""


@dataclass(frozen=True)
class FoldResult:
    """What ``train_fold`` did for one fold.

    Attributes:
        status: "trained", "validated" (final checkpoint existed, validation was missing)
            or "skipped" (finished before; pass --overwrite to retrain).
        epochs: Epochs completed.
        summary: The validation summary.json content (None without final validation).
    """

    config_name: str
    fold: int | str
    fold_dir: Path
    status: str
    epochs: int
    summary: dict[str, Any] | None


def prepare_fold_dir(
    spec: FoldSpec, config: TrainConfig, *, resume: bool, overwrite: bool
) -> tuple[str, LoadedCheckpoint | None]:
    """Decide what to do with the fold folder: "fresh", "resume", "validate" or "skip".

    Raises:
        ConfigError: if an unfinished training is there and neither --resume nor
            --overwrite was given.
        CheckpointError: if the checkpoint to resume from is corrupted.
    """
    folder, paths = spec.fold_dir, spec.paths
    if overwrite and folder.exists():
        _log.info("--overwrite: removing the contents of %s", folder)
        for entry in folder.iterdir():
            if entry == paths.lock:
                continue  # this run's lock stays
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    final = paths.checkpoint("final")
    if final.is_file():
        summary = paths.validation / "summary.json"
        if not config.validates(spec.fold) or is_current(summary, checkpoint_inputs(final)):
            return "skip", None
        return "validate", None
    if paths.checkpoint("latest").is_file():
        if not resume:
            raise ConfigError(
                "holds an unfinished training; pass --resume to continue it or --overwrite "
                "to start over",
                path=folder,
            )
        return "resume", load_checkpoint(paths.checkpoint("latest"))
    if resume:
        _log.info("nothing to resume in %s: starting from scratch", folder)
    return "fresh", None


def _write_train_config(
    session: Session, path: Path, seconds: dict[str, float] | None = None
) -> None:
    state = session.state
    timing = {"seconds": seconds} if seconds is not None else {}
    atomic_write_json(
        path,
        {
            "schema_version": 1,
            "configuration": session.spec.config_name,
            "fold": str(session.spec.fold),
            "config": session.config.to_dict(),
            "resolved": session.resolved,
            "epochs": {
                "total": state.total_epochs,
                "source": state.epochs_source,
                "budget_seconds": state.budget_seconds,
                "decided": state.epochs_decided,
            },
            "train_cases": list(session.spec.train_ids),
            "val_cases": list(session.spec.val_ids),
            **timing,
        },
    )


def run_epoch(session: Session, paths: FoldPaths) -> bool:
    """One epoch: train, validate, update the state and the time budget, save and log.
    Returns False (and records nothing) when the budget left no time for an iteration."""
    state, epoch, start = session.state, session.state.epoch, time.perf_counter()
    timings = train_epoch(session, epoch)
    if timings.iterations == 0:
        return False
    validation = validate_epoch(session)
    dice = pseudo_dice(validation.counts)
    defined = [d for d in dice if math.isfinite(d)]
    improved = state.update_ema(sum(defined) / len(defined) if defined else math.nan)
    ema = state.ema if state.ema is not None else math.nan
    seconds = time.perf_counter() - start
    record = EpochRecord(epoch, timings.loss, validation.loss, dice, ema, timings.lr, seconds)
    state.history.append(record)
    state.epoch += 1
    session.schedule.end_epoch(validation.loss)
    state.elapsed_seconds = session.elapsed()
    changed = after_epoch(
        session,
        iteration_seconds=timings.median_iteration_seconds,
        validation_seconds=validation.seconds,
        seconds_per_voxel=validation.seconds_per_voxel,
    )
    if share_epoch_plan(session.dist, state, changed) and session.dist.is_main:
        _write_train_config(session, paths.train_config)
    patience = session.config.early_stopping_patience
    if patience is not None and state.epochs_since_best >= patience and not state.finished:
        _log.info("early stopping: no better smoothed pseudo-Dice for %d epochs", patience)
        state.stopped_early = True
    if session.dist.is_main:
        _save_epoch(session, paths, record, improved)
    return True


def _save_epoch(session: Session, paths: FoldPaths, record: EpochRecord, improved: bool) -> None:
    start = time.perf_counter()
    payload = session.checkpoint_payload()
    save_checkpoint(paths.checkpoint("latest"), payload)
    if improved:
        save_checkpoint(paths.checkpoint("best"), payload)
    append_record(paths.log, record)
    if time.perf_counter() - session.plotted[0] >= PLOT_EVERY_SECONDS:
        _plot(session, paths)
    if session.writer is not None:
        session.writer.add_record(record)
    session.save_seconds = time.perf_counter() - start
    names = [t.name or t.key for t in session.spec.plans.score_targets]
    dice = ", ".join(
        f"{name} {'-' if math.isnan(d) else f'{d:.3f}'}"
        for name, d in zip(names, record.pseudo_dice)
    )
    _log.info(
        "%s fold %s epoch %d/%d: train loss %.4f, val loss %.4f, pseudo Dice [%s] (EMA %.4f%s), "
        "lr %.2e, %.1f s",
        session.spec.config_name,
        session.spec.fold,
        record.epoch + 1,
        session.state.total_epochs,
        record.train_loss,
        record.val_loss,
        dice,
        record.ema_pseudo_dice,
        ", new best" if improved else "",
        record.lr,
        record.seconds,
    )


def _plot(session: Session, paths: FoldPaths) -> None:
    """progress.png, titled with the dataset, configuration and fold, labels by name."""
    start = time.perf_counter()
    plans, spec = session.spec.plans, session.spec
    plot_progress(
        session.state.history,
        paths.progress_png,
        class_names=[t.title for t in plans.score_targets],  # labels, or regions
        title=f"{plans.dataset_name} · {spec.config_name} · fold {spec.fold}",
        ema_momentum=ema_momentum(session.state.total_epochs),
    )
    session.plotted = (time.perf_counter(), len(session.state.history))
    session.plot_seconds = session.plotted[0] - start


def _train(session: Session, paths: FoldPaths, on_epoch: EpochCallback | None = None) -> None:
    main = session.dist.is_main
    if main:
        rewrite_log(paths.log, session.state.history)
        _write_train_config(session, paths.train_config)
    try:
        while not session.state.finished:
            if run_epoch(session, paths) and on_epoch is not None:
                on_epoch(session)
    finally:
        session.close()
    if not main:
        return
    if session.plotted[1] != len(session.state.history):
        _plot(session, paths)  # the curves of every epoch, whatever the throttle skipped
    payload = session.checkpoint_payload()
    if not paths.checkpoint("best").is_file():  # the pseudo-Dice was never defined: best = final
        save_checkpoint(paths.checkpoint("best"), payload)
    save_checkpoint(paths.checkpoint("final"), payload)
    _write_train_config(session, paths.train_config)


def _validation_options(
    spec: FoldSpec, config: TrainConfig, network: torch.nn.Module, amp: bool
) -> ValidationOptions:
    device = next(network.parameters()).device
    return ValidationOptions(
        device=device,
        mirroring=final_validation_mirrors(spec, config, device.type),
        step_fraction=config.val_step_fraction,
        amp=amp,
    )


def _time_one_case(
    spec: FoldSpec, config: TrainConfig, dataset: Dataset, session: Session, case_id: str
) -> float:
    """Validate ``case_id`` as the final validation will (the time budget's probe), into a
    scratch folder inside the fold folder that is removed afterwards; returns the seconds."""
    options = _validation_options(spec, config, session.module, session.amp)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=".budget-probe-", dir=spec.fold_dir) as scratch:
        validate_case(
            session.module,
            spec.plans,
            spec.config_name,
            spec.data_dir,
            case_id,
            dataset,
            Path(scratch),
            options,
            spec.stage_dir,
        )
    return time.perf_counter() - start


def _validate(
    spec: FoldSpec, config: TrainConfig, dataset: Dataset, network: torch.nn.Module, amp: bool
) -> dict[str, Any]:
    paths = spec.paths
    options = _validation_options(spec, config, network, amp)
    return validate_cases(
        network,
        spec.plans,
        spec.config_name,
        spec.data_dir,
        spec.val_ids,
        dataset,
        paths.validation,
        options,
        inputs=checkpoint_inputs(paths.checkpoint("final")),
        label=f"{spec.config_name} fold {spec.fold} final validation",
        stage_dir=spec.stage_dir,
    )


def train_fold(
    spec: FoldSpec,
    config: TrainConfig,
    dataset: Dataset,
    *,
    resume: bool = False,
    overwrite: bool = False,
    pretrained: Path | None = None,
    on_epoch: EpochCallback | None = None,
    dist: DistContext | None = None,
    break_lock: bool = False,
) -> FoldResult:
    """Train one configuration on one fold, then validate it (see the module docstring).

    The fold folder is locked for the whole run (``train.lock``, see
    :mod:`autoseg.locking`; under torchrun by rank 0): a second trainer of the same fold
    stops with a :class:`~autoseg.errors.LockError` naming the first. Temporary files that
    killed runs left in the folder are removed.

    Args:
        spec: The plan, configuration, fold and its cases, and the workspace.
        config: Training options.
        dataset: The raw dataset (reference labels and headers of the final validation).
        resume: Continue from ``checkpoint_latest.pt`` (exactly: weights, optimiser,
            schedule, grad scaler, RNG states, history and epoch count).
        overwrite: Delete the fold folder first.
        pretrained: Initialise the weights from this checkpoint (fresh optimiser).
        on_epoch: Called after every epoch (see :data:`EpochCallback`); under torchrun on
            every rank, with the same state.
        dist: This process's rank under torchrun (default: one process); the summary is
            None on ranks other than 0.
        break_lock: Take over the fold's lock when another host holds it.

    Raises:
        LockError: another process trains this fold.
        ConfigError: an unfinished fold without --resume/--overwrite, bad options.
        CheckpointError: a corrupted or mismatching checkpoint.
        DistributedError: another rank failed or timed out.
    """
    started = time.perf_counter()
    dist = dist if dist is not None else DistContext()
    if not dist.is_main:
        return _train_fold(
            spec, config, dataset, resume, overwrite, pretrained, on_epoch, dist, started
        )
    what = f"{spec.fold_dir.parent.name}/{spec.fold_dir.name}"
    with FileLock(spec.paths.lock, what=what, break_lock=break_lock):
        for folder in (spec.fold_dir, spec.paths.validation):
            clean_temporaries(folder)
        return _train_fold(
            spec, config, dataset, resume, overwrite, pretrained, on_epoch, dist, started
        )


def _train_fold(
    spec: FoldSpec,
    config: TrainConfig,
    dataset: Dataset,
    resume: bool,
    overwrite: bool,
    pretrained: Path | None,
    on_epoch: EpochCallback | None,
    dist: DistContext,
    started: float,
) -> FoldResult:
    """The body of :func:`train_fold` (under the fold's lock on rank 0); ``started``: the
    fold's clock (``time.perf_counter()`` when :func:`train_fold` was called)."""
    with dist.main_first("preparing the fold folder"):
        action, checkpoint = prepare_fold_dir(
            spec, config, resume=resume, overwrite=overwrite and dist.is_main
        )
    paths = spec.paths
    name = f"{spec.config_name} fold {spec.fold}"
    if action == "skip":
        _log.info(
            "%s is already trained (%s); skipping it (--overwrite retrains)",
            name,
            paths.checkpoint("final"),
        )
        return FoldResult(spec.config_name, spec.fold, spec.fold_dir, "skipped", -1, None)
    if action == "validate":
        _log.info("%s is trained; running its missing final validation", name)
        final = paths.checkpoint("final")
        done = _on_rank0(dist, lambda: _validate_only(spec, config, dataset, final, dist))
        return done or FoldResult(spec.config_name, spec.fold, spec.fold_dir, "validated", -1, None)
    if checkpoint is not None:
        config = resume_config(checkpoint.train_config, config)
    spec.fold_dir.mkdir(parents=True, exist_ok=True)
    session = open_session(
        spec, config, checkpoint=checkpoint, pretrained=pretrained, dist=dist, started=started
    )
    validates = config.validates(spec.fold)
    if validates and dist.is_main:
        session.budget.probe = partial(_time_one_case, spec, config, dataset, session)
    if checkpoint is not None:
        _log.info(
            "%s: resuming after epoch %d of %d",
            name,
            session.state.epoch,
            session.state.total_epochs,
        )
    _train(session, paths, on_epoch)
    trained = session.elapsed()
    validate = partial(_validate, spec, config, dataset, session.module, session.amp)
    summary = _on_rank0(dist, validate if validates else lambda: None)
    if dist.is_main:  # how the fold's time went (over every resumed run), for the budget
        total = session.elapsed()
        seconds = {"training": trained, "validation": total - trained, "total": total}
        _write_train_config(
            session, paths.train_config, {k: round(v, 2) for k, v in seconds.items()}
        )
    return FoldResult(
        spec.config_name, spec.fold, spec.fold_dir, "trained", session.state.epoch, summary
    )


def _on_rank0(dist: DistContext, work: Callable[[], _T]) -> _T | None:
    """``work()`` on rank 0 while the other ranks wait for it (None there)."""
    try:
        return work() if dist.is_main else None
    finally:  # release the others even if rank 0 failed: they exit, torchrun reports it
        dist.barrier("waiting for rank 0's final validation", FINAL_WAIT_SECONDS)


def _validate_only(
    spec: FoldSpec, config: TrainConfig, dataset: Dataset, final: Path, dist: DistContext
) -> FoldResult:
    device = dist.device if dist.device is not None else select_device(config.device)
    network, loaded = load_model(final, device=str(device))
    amp = use_autocast(config.amp, device.type, spec.config_plan.precision)
    summary = _validate(spec, config, dataset, network, amp)
    epochs = int(loaded.state.get("epoch", 0))
    return FoldResult(spec.config_name, spec.fold, spec.fold_dir, "validated", epochs, summary)
