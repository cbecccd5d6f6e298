"""Optional TensorBoard scalars (``--tensorboard``; needs the ``tensorboard`` package)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from autoseg.errors import ConfigError
from autoseg.trainers.history import EpochRecord

__all__ = ["TensorBoardWriter"]


class TensorBoardWriter:
    """Writes each epoch's losses, pseudo-Dice, learning rate and duration to ``folder``.

    Raises:
        ConfigError: if the tensorboard package is not installed.
    """

    def __init__(self, folder: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError(
                "--tensorboard needs the tensorboard package: pip install tensorboard"
            ) from None
        self.writer: Any = SummaryWriter(log_dir=str(folder))

    def add_record(self, record: EpochRecord) -> None:
        """Add one epoch's scalars (step = epoch)."""
        scalars = {
            "loss/train": record.train_loss,
            "loss/val": record.val_loss,
            "pseudo_dice/ema": record.ema_pseudo_dice,
            "lr": record.lr,
            "seconds_per_epoch": record.seconds,
        }
        scalars.update({f"pseudo_dice/class_{c + 1}": d for c, d in enumerate(record.pseudo_dice)})
        for tag, value in scalars.items():
            if math.isfinite(value):
                self.writer.add_scalar(tag, value, record.epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
