"""Per-epoch training records and ``log.jsonl`` (one JSON object per epoch).

On resume the log is rewritten from the checkpoint's history (atomically), so it never holds
an epoch twice, nor an epoch the checkpoint does not know about.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoseg.atomic import atomic_write_text

__all__ = ["EpochRecord", "append_record", "rewrite_log"]


def _float(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch did.

    Attributes:
        epoch: 0-based epoch index.
        train_loss: Mean training loss over the epoch's iterations.
        val_loss: Mean loss over the validation batches.
        pseudo_dice: Dice per foreground class over the validation batches (NaN where a
            class appeared neither in the reference nor the prediction).
        ema_pseudo_dice: Exponential moving average (0.9) of the mean pseudo-Dice; the best
            checkpoint follows it.
        lr: Learning rate used in the epoch.
        seconds: Wall-clock duration of the epoch (training + validation batches).
    """

    epoch: int
    train_loss: float
    val_loss: float
    pseudo_dice: tuple[float, ...]
    ema_pseudo_dice: float
    lr: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict; NaN and infinities become null."""
        return {
            "epoch": int(self.epoch),
            "train_loss": _float(self.train_loss),
            "val_loss": _float(self.val_loss),
            "pseudo_dice": [_float(v) for v in self.pseudo_dice],
            "ema_pseudo_dice": _float(self.ema_pseudo_dice),
            "lr": float(self.lr),
            "seconds": float(self.seconds),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpochRecord:
        """Inverse of :meth:`to_dict` (null becomes NaN)."""

        def number(value: Any) -> float:
            return math.nan if value is None else float(value)

        return cls(
            epoch=int(data["epoch"]),
            train_loss=number(data["train_loss"]),
            val_loss=number(data["val_loss"]),
            pseudo_dice=tuple(number(v) for v in data["pseudo_dice"]),
            ema_pseudo_dice=number(data["ema_pseudo_dice"]),
            lr=float(data["lr"]),
            seconds=float(data["seconds"]),
        )


def append_record(path: Path, record: EpochRecord) -> None:
    """Append one line to ``log.jsonl`` (flushed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record.to_dict()) + "\n")
        handle.flush()


def rewrite_log(path: Path, history: Sequence[EpochRecord]) -> None:
    """Replace ``log.jsonl`` atomically with exactly ``history``."""
    atomic_write_text(path, "".join(json.dumps(r.to_dict()) + "\n" for r in history))
