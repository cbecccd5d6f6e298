"""Resuming a fold from its checkpoint, and starting from pretrained weights.

A resumed run restores everything a killed run had (weights, optimiser, schedule, grad
scaler, RNG states, progress and history) and continues with the checkpoint's training
hyper-parameters; only the run options of :data:`RUN_OPTIONS` come from the new command line
(an explicit ``--epochs`` changes the total and the schedule's length). ``--pretrained``
loads weights only, with a fresh optimiser (DeepMedic's ``-resetopt``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from autoseg.errors import CheckpointError, ConfigError
from autoseg.inference.checkpoint import LoadedCheckpoint, load_checkpoint
from autoseg.log import get_logger
from autoseg.seeding import restore_rng_state
from autoseg.trainers.config import TrainConfig
from autoseg.trainers.session import Session
from autoseg.trainers.state import TrainingState

__all__ = ["RUN_OPTIONS", "load_pretrained", "restore_session", "resume_config"]

_log = get_logger(__name__)


def load_pretrained(module: torch.nn.Module, path: Path) -> None:
    checkpoint = load_checkpoint(path)
    try:
        module.load_state_dict(checkpoint.raw["model"])
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise CheckpointError(
            f"pretrained weights do not fit this configuration's network ({first})", path=path
        ) from None
    _log.info("initialised the network from %s (fresh optimiser state)", path)


def _restore(session: Session, checkpoint: LoadedCheckpoint) -> None:
    spec = session.spec
    if checkpoint.configuration != spec.config_name or checkpoint.fold != str(spec.fold):
        raise CheckpointError(
            f"checkpoint is of {checkpoint.configuration} fold {checkpoint.fold}, not "
            f"{spec.config_name} fold {spec.fold}",
            path=checkpoint.path,
        )
    if checkpoint.plans.to_dict() != spec.plans.to_dict():
        raise CheckpointError(
            "plans.json changed since this checkpoint was written; retrain with --overwrite",
            path=checkpoint.path,
        )
    raw = checkpoint.raw
    try:
        session.module.load_state_dict(raw["model"])
        session.optimizer.load_state_dict(raw["optimizer"])
        session.schedule.load_state_dict(raw["scheduler"])
        if raw.get("scaler"):
            session.scaler.load_state_dict(raw["scaler"])
        restore_rng_state(raw["rng"])
    except (KeyError, RuntimeError, ValueError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"checkpoint cannot be restored ({first})", path=checkpoint.path
        ) from None
    try:
        session.state = TrainingState.from_dict(checkpoint.state)
    except CheckpointError as err:
        raise CheckpointError(err.message, path=checkpoint.path) from None


def _apply_epochs_override(session: Session) -> None:
    """An explicit --epochs on resume sets the total (the schedule follows the epochs from
    then on, a time budget of the checkpoint no longer applies)."""
    epochs, state = session.config.epochs, session.state
    if epochs is None or epochs == state.total_epochs:
        return
    _log.info("resuming with --epochs %d (the checkpoint planned %d)", epochs, state.total_epochs)
    state.total_epochs, state.epochs_source, state.epochs_decided = epochs, "--epochs", True
    state.budget_seconds, state.out_of_time = None, False


RUN_OPTIONS = (
    "epochs",
    "device",
    "num_workers",
    "threads",
    "final_validation",
    "val_mirroring",
    "val_step_fraction",
    "tensorboard",
    "compile",
    "channels_last",
)
"""TrainConfig fields a resumed run takes from its command line; the others (the training
hyper-parameters) come from the checkpoint so the run continues as it started."""


def resume_config(stored: dict[str, Any], given: TrainConfig) -> TrainConfig:
    """The config of a resumed run: the checkpoint's hyper-parameters, this run's options.

    Raises:
        CheckpointError: if the stored config cannot be parsed.
    """
    try:
        base = TrainConfig.from_dict(stored["config"])
    except (ConfigError, KeyError, TypeError) as err:
        raise CheckpointError(f"checkpoint holds an invalid train config ({err})") from None
    ignored = [
        name
        for name, value in given.to_dict().items()
        if name not in RUN_OPTIONS and value != getattr(base, name)
    ]
    if ignored:
        _log.warning(
            "resuming with the checkpoint's %s (options given now are ignored)", ", ".join(ignored)
        )
    return base.with_overrides(**{name: getattr(given, name) for name in RUN_OPTIONS})


def restore_session(session: Session, checkpoint: LoadedCheckpoint) -> None:
    """Restore a session from a checkpoint of the same configuration, fold and plans.

    Raises:
        CheckpointError: if the checkpoint belongs elsewhere or cannot be restored.
    """
    _restore(session, checkpoint)
    _apply_epochs_override(session)
