"""The mutable progress of a fold's training, stored as JSON in every checkpoint."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from autoseg.errors import CheckpointError
from autoseg.trainers.history import EpochRecord

__all__ = ["EMA_MOMENTUM", "TrainingState", "ema_momentum"]

EMA_MOMENTUM = 0.9
"""The largest weight of the previous value in the moving average of the mean pseudo-Dice
(nnU-Net's), used from 100 epochs on."""


def ema_momentum(total_epochs: int) -> float:
    """Weight of the previous value in the moving average of a run of ``total_epochs``.

    The average spans about a tenth of the run: a window of ``w = total_epochs / 10``
    epochs, between 1 and 10, and the momentum ``1 - 1 / w``: 0 (the epoch's own value, no
    lag) up to 10 epochs, 0.5 at 20, 0.8 at 50 and :data:`EMA_MOMENTUM` (0.9, nnU-Net's)
    from 100 on. A fixed 0.9 lags far behind in short runs: after 10 epochs it still weighs
    the first epoch's value by 0.9⁹ ≈ 0.39, and the best checkpoint follows the average.
    """
    window = min(1.0 / (1.0 - EMA_MOMENTUM), max(1.0, total_epochs / 10.0))
    return 1.0 - 1.0 / window


def _number(value: Any) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


@dataclass
class TrainingState:
    """Where a fold's training stands.

    Attributes:
        epoch: Epochs completed (the next epoch to run).
        total_epochs: Epochs the fold runs in total (the schedule's length).
        epochs_source: Why that many: "--epochs", "--time-budget", "cpu default budget",
            "default" (1000 on a GPU).
        budget_seconds: The fold's time budget, if the count follows one.
        iters_per_epoch: Training iterations per epoch (the config's, or shortened to fit a
            short time budget).
        val_iters: Validation batches per epoch.
        epochs_decided: False until a budget's epoch count has first been estimated (after
            epoch 0); with a budget the count is an estimate, for logs and curves.
        ema: Moving average of the mean pseudo-Dice (None before the first defined value),
            with the momentum :func:`ema_momentum` gives the run's current epoch count.
        best_ema: Best moving average so far (None before the first).
        epochs_since_best: Epochs since the best moving average (early stopping).
        elapsed_seconds: Training wall-clock time so far, over every (resumed) run.
        stopped_early: Early stopping ended the training.
        out_of_time: The time budget ended the training.
        history: One record per completed epoch.
    """

    total_epochs: int
    epochs_source: str
    budget_seconds: float | None = None
    iters_per_epoch: int = 250
    val_iters: int = 50
    epochs_decided: bool = True
    epoch: int = 0
    ema: float | None = None
    best_ema: float | None = None
    epochs_since_best: int = 0
    elapsed_seconds: float = 0.0
    stopped_early: bool = False
    out_of_time: bool = False
    history: list[EpochRecord] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        """Early stopping or the budget ended the fold, or (without a budget) every epoch ran."""
        if self.stopped_early or self.out_of_time:
            return True
        return self.budget_seconds is None and self.epoch >= self.total_epochs

    def update_ema(self, mean_dice: float) -> bool:
        """Fold in an epoch's mean pseudo-Dice (NaN: no change); True if the average improved
        on the best so far (which then becomes it). The momentum follows the current epoch
        count (:func:`ema_momentum`), which a time budget may still change."""
        if math.isfinite(mean_dice):
            previous, momentum = self.ema, ema_momentum(self.total_epochs)
            self.ema = (
                mean_dice if previous is None else momentum * previous + (1 - momentum) * mean_dice
            )
        if self.ema is not None and (self.best_ema is None or self.ema > self.best_ema):
            self.best_ema = self.ema
            self.epochs_since_best = 0
            return True
        self.epochs_since_best += 1
        return False

    def to_json(self) -> str:
        return json.dumps(
            {
                "epoch": self.epoch,
                "total_epochs": self.total_epochs,
                "epochs_source": self.epochs_source,
                "budget_seconds": self.budget_seconds,
                "iters_per_epoch": self.iters_per_epoch,
                "val_iters": self.val_iters,
                "epochs_decided": self.epochs_decided,
                "ema": _number(self.ema),
                "best_ema": _number(self.best_ema),
                "epochs_since_best": self.epochs_since_best,
                "elapsed_seconds": self.elapsed_seconds,
                "stopped_early": self.stopped_early,
                "out_of_time": self.out_of_time,
                "history": [r.to_dict() for r in self.history],
            }
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingState:
        """Parse the checkpoint's ``state_json`` content.

        Raises:
            CheckpointError: if a key is missing or malformed.
        """
        try:
            return cls(
                epoch=int(data["epoch"]),
                total_epochs=int(data["total_epochs"]),
                epochs_source=str(data["epochs_source"]),
                budget_seconds=_number(data["budget_seconds"]),
                iters_per_epoch=int(data["iters_per_epoch"]),
                val_iters=int(data["val_iters"]),
                epochs_decided=bool(data["epochs_decided"]),
                ema=_number(data["ema"]),
                best_ema=_number(data["best_ema"]),
                epochs_since_best=int(data["epochs_since_best"]),
                elapsed_seconds=float(data["elapsed_seconds"]),
                stopped_early=bool(data["stopped_early"]),
                out_of_time=bool(data["out_of_time"]),
                history=[EpochRecord.from_dict(r) for r in data["history"]],
            )
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"checkpoint training state is malformed ({err!r})") from None
