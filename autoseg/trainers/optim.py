"""Optimisers and learning-rate schedules (pure schedule functions, JSON-able state).

The schedule is set once per epoch: :func:`poly_lr` is a pure function of the epoch, so a
time budget that changes the number of epochs after the first one simply changes
``total_epochs`` (the rate of the epochs already run is unaffected by design: it only
depends on the epoch index and the total).
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


def poly_lr(initial_lr: float, epoch: int, total_epochs: int, exponent: float = 0.9) -> float:
    """Polynomial decay: ``initial_lr * (1 - epoch / total_epochs) ** exponent``.

    Example:
        >>> round(poly_lr(0.01, 500, 1000), 6)
        0.005359
    """
    progress = min(max(epoch, 0), total_epochs) / max(total_epochs, 1)
    return float(initial_lr * (1.0 - progress) ** exponent)


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


class LRSchedule(Protocol):
    """Sets the optimiser's rate at the start of an epoch; sees the validation loss after it."""

    total_epochs: int

    def start_epoch(self, epoch: int) -> float: ...

    def end_epoch(self, val_loss: float) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class PolySchedule:
    """Polynomial decay over ``total_epochs`` (nnU-Net's schedule)."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        initial_lr: float,
        total_epochs: int,
        exponent: float,
    ) -> None:
        self.optimizer = optimizer
        self.initial_lr = initial_lr
        self.total_epochs = total_epochs
        self.exponent = exponent

    def start_epoch(self, epoch: int) -> float:
        lr = poly_lr(self.initial_lr, epoch, self.total_epochs, self.exponent)
        _set_lr(self.optimizer, lr)
        return lr

    def end_epoch(self, val_loss: float) -> None:
        """Nothing: the rate depends on the epoch only."""

    def state_dict(self) -> dict[str, Any]:
        return {"initial_lr": self.initial_lr, "total_epochs": self.total_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.initial_lr = float(state["initial_lr"])
        self.total_epochs = int(state["total_epochs"])


class ConstantSchedule(PolySchedule):
    """The initial rate throughout."""

    def start_epoch(self, epoch: int) -> float:
        _set_lr(self.optimizer, self.initial_lr)
        return self.initial_lr


class PlateauSchedule:
    """Halve the rate when the validation loss has not improved for ``patience`` epochs."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, initial_lr: float, total_epochs: int, patience: int
    ) -> None:
        self.optimizer = optimizer
        self.total_epochs = total_epochs
        _set_lr(optimizer, initial_lr)
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=0.5, patience=patience, min_lr=initial_lr * 1e-3
        )

    def start_epoch(self, epoch: int) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def end_epoch(self, val_loss: float) -> None:
        if math.isfinite(val_loss):
            self.plateau.step(val_loss)

    def state_dict(self) -> dict[str, Any]:
        return {"total_epochs": self.total_epochs, "plateau": self.plateau.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.total_epochs = int(state["total_epochs"])
        self.plateau.load_state_dict(state["plateau"])


def make_schedule(
    name: str,
    optimizer: torch.optim.Optimizer,
    *,
    initial_lr: float,
    total_epochs: int,
    poly_exponent: float = 0.9,
    plateau_patience: int = 10,
) -> LRSchedule:
    """The schedule called ``name`` ("poly", "plateau" or "constant").

    Raises:
        ConfigError: for an unknown name.
    """
    if name == "poly":
        return PolySchedule(optimizer, initial_lr, total_epochs, poly_exponent)
    if name == "constant":
        return ConstantSchedule(optimizer, initial_lr, total_epochs, poly_exponent)
    if name == "plateau":
        return PlateauSchedule(optimizer, initial_lr, total_epochs, plateau_patience)
    raise choice_error("schedule", name, ("poly", "plateau", "constant"))
