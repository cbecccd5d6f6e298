"""TrainConfig: every training knob, one frozen dataclass built from the CLI, recorded as JSON.

A knob left at ``None`` is decided at run time (by the device, the plan or the network
family's strategy) and the decided value is recorded next to the config in
``train_config.json`` and in every checkpoint. Defaults follow nnU-Net on a GPU: 1000 epochs
of 250 iterations, 50 validation iterations, SGD with Nesterov momentum 0.99, learning rate
1e-2 decaying polynomially (exponent 0.9), weight decay 3e-5, gradients clipped at norm 12.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoseg.errors import ConfigError
from autoseg.planner.heuristics import LOSSES, OPTIMIZERS
from autoseg.strict import check_keys, choice_error

__all__ = [
    "DEVICES",
    "LOSSES",
    "OPTIMIZERS",
    "SCHEDULES",
    "TrainConfig",
    "TrainingRequest",
    "is_train_device",
]

DEVICES = ("auto", "cuda", "cpu", "mps")
SCHEDULES = ("poly", "plateau", "constant")
_CUDA_INDEX = re.compile(r"cuda:\d+")


def is_train_device(value: object) -> bool:
    """A valid ``--device``: one of :data:`DEVICES`, or ``cuda:N`` (one GPU by index)."""
    return isinstance(value, str) and (value in DEVICES or bool(_CUDA_INDEX.fullmatch(value)))


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters and run options.

    Attributes:
        epochs: Number of epochs; None = decided at run time (1000 on a GPU; on a CPU from
            ``time_budget_seconds`` or, if that is None too, ``cpu_default_budget_seconds``).
        iters_per_epoch: Training iterations (batches) per epoch, >= 1; None = 250, shortened
            when a time budget is too short for 10 such epochs (see
            :mod:`autoseg.trainers.time_budget`).
        val_iters: Validation batches per epoch for the online pseudo-Dice, >= 1; None = 50,
            shortened in proportion with the epochs.
        time_budget_seconds: Wall-clock budget of one fold (seconds): after the first epoch
            the number of epochs is set so the fold, final validation included, fits.
        cpu_default_budget_seconds: The budget used on a CPU when neither ``epochs`` nor
            ``time_budget_seconds`` is given (never a months-long run by accident).
        device: "auto" (CUDA, else MPS, else CPU), "cuda", "cuda:N" (the GPU of index N),
            "cpu" or "mps".
        amp: Mixed precision; None = on for CUDA when the plan says "amp". Only on CUDA.
        seed: Seed of the weights, the sampling and the augmentation.
        optimizer: "sgd" (Nesterov momentum), "adam" or "adamw"; None = the plan's (its
            configuration's ``optimizer``: SGD on a GPU, Adam for the U-Net on a CPU).
        lr: Initial learning rate; None = the plan's (its configuration's ``lr``).
        momentum: SGD momentum; None = the family's default.
        weight_decay: L2 weight decay (decoupled for AdamW).
        schedule: "poly" (``lr * (1 - epoch / epochs) ** poly_exponent``), "plateau"
            (halve when the validation loss stops improving) or "constant".
        poly_exponent: Exponent of the polynomial decay.
        plateau_patience: Epochs without improvement before "plateau" lowers the rate.
        grad_clip_norm: Clip the gradient norm to this value; None = no clipping.
        loss: "dice_ce", "generalized_dice_ce", "ce" or "dice"; None = the family's default
            (Dice + CE for the U-Net, CE for DeepMedic).
        early_stopping_patience: Stop when the smoothed pseudo-Dice has not improved for
            this many epochs; None = never.
        num_workers: Data-loading worker processes; 0 = in-process; None = chosen from the
            CPU count and the device.
        threads: Torch CPU threads; None = torch's default (every core). On a machine whose
            cores are busy with other work, fewer threads can be several times faster.
        channels_last: Use the channels-last-3d memory format; None = the family's default
            on a CPU (on for the U-Net, measured faster; off for DeepMedic, measured slower),
            off on GPUs (not measured).
        compile: Wrap the network in ``torch.compile`` (measure before enabling).
        final_validation: Predict the fold's validation cases at the end of training; None =
            yes for the cross-validation folds, no for ``fold=all`` (its "validation" cases
            are its training cases; ``--validation`` asks for it anyway).
        val_mirroring: Mirroring TTA in the final validation; None = as ``autoseg predict``
            would by default (on a GPU; on a CPU when a case stays within seconds, see
            :func:`~autoseg.trainers.validation.final_validation_mirrors`).
        val_step_fraction: Sliding-window step (fraction of a patch) of the final validation.
        tensorboard: Also write TensorBoard scalars (needs the ``tensorboard`` package).
    """

    epochs: int | None = None
    iters_per_epoch: int | None = None
    val_iters: int | None = None
    time_budget_seconds: float | None = None
    cpu_default_budget_seconds: float = 3600.0
    device: str = "auto"
    amp: bool | None = None
    seed: int = 0
    optimizer: str | None = None
    lr: float | None = None
    momentum: float | None = None
    weight_decay: float = 3e-5
    schedule: str = "poly"
    poly_exponent: float = 0.9
    plateau_patience: int = 10
    grad_clip_norm: float | None = 12.0
    loss: str | None = None
    early_stopping_patience: int | None = None
    num_workers: int | None = None
    threads: int | None = None
    channels_last: bool | None = None
    compile: bool = False
    final_validation: bool | None = None
    val_mirroring: bool | None = None
    val_step_fraction: float = 0.5
    tensorboard: bool = False

    def __post_init__(self) -> None:
        _set(self, "plateau_patience", _int("plateau_patience", self.plateau_patience, 1))
        for name in ("epochs", "early_stopping_patience", "iters_per_epoch", "val_iters"):
            value = getattr(self, name)
            _set(self, name, None if value is None else _int(name, value, 1))
        if self.num_workers is not None:
            _set(self, "num_workers", _int("num_workers", self.num_workers, 0))
        if self.threads is not None:
            _set(self, "threads", _int("threads", self.threads, 1))
        _set(self, "seed", _int("seed", self.seed, 0))
        for name in ("time_budget_seconds", "lr", "grad_clip_norm"):
            value = getattr(self, name)
            _set(self, name, None if value is None else _positive(name, value))
        for name in ("cpu_default_budget_seconds", "poly_exponent"):
            _set(self, name, _positive(name, getattr(self, name)))
        if self.momentum is not None and not 0.0 <= float(self.momentum) < 1.0:
            raise ConfigError(f"momentum (--momentum) must be in [0, 1), got {self.momentum}")
        if not float(self.weight_decay) >= 0:  # NaN fails this too
            raise ConfigError(
                f"weight decay (--weight-decay) must be >= 0, got {self.weight_decay}"
            )
        if not 0.0 < float(self.val_step_fraction) <= 1.0:
            raise ConfigError(
                f"validation step (--val-step) must be in (0, 1], got {self.val_step_fraction}"
            )
        if not is_train_device(self.device):
            raise choice_error("device", self.device, [*DEVICES, "cuda:N"])
        if self.schedule not in SCHEDULES:
            raise choice_error("schedule", self.schedule, SCHEDULES)
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise choice_error("optimizer", self.optimizer, OPTIMIZERS)
        if self.loss is not None and self.loss not in LOSSES:
            raise choice_error("loss", self.loss, LOSSES)

    def validates(self, fold: int | str) -> bool:
        """Whether fold ``fold`` runs the final validation (see ``final_validation``)."""
        if self.final_validation is not None:
            return bool(self.final_validation)
        return fold != "all"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of every field."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Any) -> TrainConfig:
        """Strict inverse of :meth:`to_dict`.

        Raises:
            ConfigError: on unknown or missing keys (the message lists the expected keys) or
                invalid values.
        """
        check_keys("train config", data, [f.name for f in dataclasses.fields(cls)])
        return cls(**data)

    def with_overrides(self, **changes: Any) -> TrainConfig:
        """A copy with some fields replaced (validated again)."""
        return dataclasses.replace(self, **changes)


def _set(config: TrainConfig, name: str, value: Any) -> None:
    object.__setattr__(config, name, value)


def _int(name: str, value: Any, minimum: int) -> int:
    integral = isinstance(value, float) and value.is_integer()
    if (isinstance(value, bool) or not hasattr(value, "__index__")) and not integral:
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    result = int(value)
    if result < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {result}")
    return result


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not (math.isfinite(result) and result > 0):
        raise ConfigError(f"{name} must be a positive number, got {value!r}")
    return result


@dataclass(frozen=True)
class TrainingRequest:
    """What ``autoseg train`` was asked to do.

    Attributes:
        configs: Configuration names, or ("all",) for every planned configuration.
        folds: Fold indices and/or "all" (train on every case); empty: every fold of the
            split (splits.json).
        config: Training options.
        resume: Continue unfinished folds from their latest checkpoint.
        overwrite: Retrain folds from scratch (deleting their folders).
        pretrained: Initialise the weights from this checkpoint (one configuration only).
        break_lock: Take over fold locks held by another host (``--break-lock``).
    """

    configs: tuple[str, ...]
    folds: tuple[int | str, ...]
    config: TrainConfig
    resume: bool = False
    overwrite: bool = False
    pretrained: Path | None = None
    break_lock: bool = False
