"""Optimisers and learning-rate schedules (pure schedule functions, JSON-able state).

The rate is set before every iteration from the schedule's *progress* in [0, 1]
(:func:`autoseg.trainers.time_budget.schedule_progress`): the share of the epochs done with
``--epochs``, the share of the training time used with a time budget. :func:`poly_lr` is a
pure function of it, so a resumed run continues the same curve and a budget's schedule always
decays fully by the end, however fast the iterations turn out to be.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Protocol

import torch

from autoseg.strict import choice_error

__all__ = [
    "ConstantSchedule",
    "LRSchedule",
    "PlateauSchedule",
    "PolySchedule",
    "make_optimizer",
    "make_schedule",
    "poly_lr",
]


def make_optimizer(
    parameters: Iterable[torch.nn.Parameter],
    name: str,
    *,
    lr: float,
    momentum: float,
    weight_decay: float,
) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum, Adam or AdamW.

    Raises:
        ConfigError: for an unknown optimiser name (listing the choices).
    """
    params = list(parameters)
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=momentum, nesterov=momentum > 0, weight_decay=weight_decay
        )
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise choice_error("optimizer", name, ("sgd", "adam", "adamw"))


def poly_lr(initial_lr: float, progress: float, exponent: float = 0.9) -> float:
    """Polynomial decay: ``initial_lr * (1 - progress) ** exponent``, ``progress`` in [0, 1].

    Example:
        >>> round(poly_lr(0.01, 0.5), 6)
        0.005359
    """
    return float(initial_lr * (1.0 - min(max(progress, 0.0), 1.0)) ** exponent)


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


class LRSchedule(Protocol):
    """Sets the optimiser's rate before every iteration from the schedule's progress (see
    :func:`autoseg.trainers.time_budget.schedule_progress`); sees the validation loss after
    each epoch."""

    def set_progress(self, progress: float) -> float: ...

    def end_epoch(self, val_loss: float) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class PolySchedule:
    """Polynomial decay over the schedule's progress (nnU-Net's schedule, per iteration)."""

    def __init__(self, optimizer: torch.optim.Optimizer, initial_lr: float, exponent: float):
        self.optimizer = optimizer
        self.initial_lr = initial_lr
        self.exponent = exponent

    def set_progress(self, progress: float) -> float:
        lr = poly_lr(self.initial_lr, progress, self.exponent)
        _set_lr(self.optimizer, lr)
        return lr

    def end_epoch(self, val_loss: float) -> None:
        """Nothing: the rate depends on the progress only."""

    def state_dict(self) -> dict[str, Any]:
        return {"initial_lr": self.initial_lr}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.initial_lr = float(state["initial_lr"])


class ConstantSchedule(PolySchedule):
    """The initial rate throughout."""

    def set_progress(self, progress: float) -> float:
        _set_lr(self.optimizer, self.initial_lr)
        return self.initial_lr


class PlateauSchedule:
    """Halve the rate when the validation loss has not improved for ``patience`` epochs."""

    def __init__(self, optimizer: torch.optim.Optimizer, initial_lr: float, patience: int):
        self.optimizer = optimizer
        _set_lr(optimizer, initial_lr)
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=0.5, patience=patience, min_lr=initial_lr * 1e-3
        )

    def set_progress(self, progress: float) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def end_epoch(self, val_loss: float) -> None:
        if math.isfinite(val_loss):
            self.plateau.step(val_loss)

    def state_dict(self) -> dict[str, Any]:
        return {"plateau": self.plateau.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.plateau.load_state_dict(state["plateau"])


def make_schedule(
    name: str,
    optimizer: torch.optim.Optimizer,
    *,
    initial_lr: float,
    poly_exponent: float = 0.9,
    plateau_patience: int = 10,
) -> LRSchedule:
    """The schedule called ``name`` ("poly", "plateau" or "constant").

    Raises:
        ConfigError: for an unknown name.
    """
    if name == "poly":
        return PolySchedule(optimizer, initial_lr, poly_exponent)
    if name == "constant":
        return ConstantSchedule(optimizer, initial_lr, poly_exponent)
    if name == "plateau":
        return PlateauSchedule(optimizer, initial_lr, plateau_patience)
    raise choice_error("schedule", name, ("poly", "plateau", "constant"))
