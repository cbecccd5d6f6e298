"""A fold's training history: per-epoch records, ``log.jsonl`` and ``progress.png``.

``log.jsonl`` holds one JSON object per epoch. On resume the log is rewritten from the
checkpoint's history (atomically), so it never holds an epoch twice, nor an epoch the
checkpoint does not know about. ``progress.png`` draws the curves (losses, pseudo-Dice,
learning rate, epoch time) with Matplotlib's object API (no pyplot state), imported inside
:func:`plot_progress` so the training state and the CLI do not load it; the PNG is written
atomically so a viewer never sees half a file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoseg.atomic import atomic_path, atomic_write_text

__all__ = ["EpochRecord", "append_record", "plot_progress", "rewrite_log"]


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


def plot_progress(
    history: Sequence[EpochRecord], path: Path, *, class_names: Sequence[str] = ()
) -> None:
    """Draw the training curves of ``history`` into ``path`` (PNG).

    Top: training and validation loss, pseudo-Dice per class and its moving average (right
    axis). Middle: learning rate. Bottom: seconds per epoch.

    Args:
        history: One record per epoch, in order.
        path: Output PNG path.
        class_names: Names of the foreground classes (default "class 1", "class 2", ...).
    """
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    epochs = [r.epoch for r in history]
    figure = Figure(figsize=(10, 10), dpi=80)
    loss_axis, lr_axis, time_axis = figure.subplots(3, 1, sharex=True)
    loss_axis.plot(epochs, [r.train_loss for r in history], color="tab:blue", label="train loss")
    loss_axis.plot(epochs, [r.val_loss for r in history], color="tab:red", label="val loss")
    loss_axis.set_ylabel("loss")
    dice_axis = loss_axis.twinx()
    num_classes = max((len(r.pseudo_dice) for r in history), default=0)
    for c in range(num_classes):
        name = class_names[c] if c < len(class_names) else f"class {c + 1}"
        values = [r.pseudo_dice[c] if c < len(r.pseudo_dice) else math.nan for r in history]
        dice_axis.plot(epochs, values, linestyle=":", linewidth=1, label=f"pseudo Dice {name}")
    dice_axis.plot(
        epochs, [r.ema_pseudo_dice for r in history], color="tab:green", label="pseudo Dice (EMA)"
    )
    dice_axis.set_ylabel("pseudo Dice")
    dice_axis.set_ylim(0, 1)
    handles = loss_axis.get_legend_handles_labels()
    more = dice_axis.get_legend_handles_labels()
    loss_axis.legend(handles[0] + more[0], handles[1] + more[1], loc="center right", fontsize=8)
    lr_axis.plot(epochs, [r.lr for r in history], color="tab:purple")
    lr_axis.set_ylabel("learning rate")
    time_axis.plot(epochs, [r.seconds for r in history], color="tab:gray")
    time_axis.set_ylabel("seconds per epoch")
    time_axis.set_xlabel("epoch")
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
