"""A fold's training history: per-epoch records, ``log.jsonl`` and ``progress.png``.

``log.jsonl`` holds one JSON object per epoch. On resume the log is rewritten from the
checkpoint's history (atomically), so it never holds an epoch twice, nor an epoch the
checkpoint does not know about. ``progress.png`` draws the curves (losses, pseudo-Dice per
label by name, their moving average and the best checkpoint's epoch, learning rate, epoch
time) with Matplotlib's object API (no pyplot state), imported inside
:func:`progress_figure` so the training state and the CLI do not load it; the PNG is written
atomically so a viewer never sees half a file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoseg.atomic import atomic_path, atomic_write_text
from autoseg.viz.palette import OKABE_ITO

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["EpochRecord", "append_record", "plot_progress", "progress_figure", "rewrite_log"]


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
        ema_pseudo_dice: Exponential moving average of the mean pseudo-Dice (momentum from
            :func:`autoseg.trainers.state.ema_momentum`); the best checkpoint follows it.
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


def _best_epoch(history: Sequence[EpochRecord]) -> int | None:
    """Index of the record whose moving average ``checkpoint_best.pt`` holds (the first of
    the highest values), None when it was never defined."""
    values = [r.ema_pseudo_dice for r in history]
    finite = [i for i, v in enumerate(values) if math.isfinite(v)]
    return max(finite, key=lambda i: (values[i], -i)) if finite else None


def plot_progress(
    history: Sequence[EpochRecord],
    path: Path,
    *,
    class_names: Sequence[str] = (),
    title: str = "",
    ema_momentum: float | None = None,
) -> None:
    """Draw the training curves of ``history`` (:func:`progress_figure`) into ``path`` (PNG,
    written atomically)."""
    figure = progress_figure(
        history, class_names=class_names, title=title, ema_momentum=ema_momentum
    )
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")


def progress_figure(
    history: Sequence[EpochRecord],
    *,
    class_names: Sequence[str] = (),
    title: str = "",
    ema_momentum: float | None = None,
) -> Figure:
    """The training curves of ``history`` as a Matplotlib figure (Agg canvas, no pyplot).

    Top: training and validation loss (left axis), pseudo-Dice per label, their mean and its
    moving average, with the epoch whose average ``checkpoint_best.pt`` holds (right axis).
    Middle: learning rate. Bottom: seconds per epoch. Epochs are numbered from 1, as in the
    log lines; points carry markers (one epoch is a visible point); the legend sits to the
    right of the curves; colours are colour-blind safe (Okabe-Ito).

    Args:
        history: One record per epoch, in order.
        class_names: Names of the foreground labels, e.g. ``"lesion (1)"`` (default
            ``"label 1"``, ``"label 2"``, ...).
        title: Figure title, e.g. ``"Hippocampus · unet3d · fold 0"``.
        ema_momentum: The moving average's momentum, shown in its legend entry.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state
    from matplotlib.ticker import MaxNLocator

    epochs = [r.epoch + 1 for r in history]
    style = {"marker": "o", "markersize": 3.5} if len(history) <= 60 else {}
    figure = Figure(figsize=(11, 9), dpi=80, layout="constrained")
    FigureCanvasAgg(figure)
    loss_axis, lr_axis, time_axis = figure.subplots(3, 1, sharex=True, height_ratios=(3, 1, 1))
    loss_axis.plot(
        epochs, [r.train_loss for r in history], color=OKABE_ITO[4], label="train loss", **style
    )
    loss_axis.plot(
        epochs, [r.val_loss for r in history], color=OKABE_ITO[5], label="validation loss", **style
    )
    loss_axis.set_ylabel("loss")
    dice_axis = loss_axis.twinx()
    num_classes = max((len(r.pseudo_dice) for r in history), default=0)
    colours = [c for i, c in enumerate(OKABE_ITO) if i not in (4, 5)]
    for c in range(num_classes):
        name = class_names[c] if c < len(class_names) else f"label {c + 1}"
        values = [r.pseudo_dice[c] if c < len(r.pseudo_dice) else math.nan for r in history]
        dice_axis.plot(
            epochs,
            values,
            linestyle=":",
            linewidth=1.2,
            color=colours[c % len(colours)],
            label=f"pseudo Dice: {name}",
            **style,
        )
    means = [_mean(r.pseudo_dice) for r in history]
    dice_axis.plot(
        epochs,
        means,
        linestyle="--",
        linewidth=1.2,
        color="0.35",
        label="mean pseudo Dice",
        **style,
    )
    smoothing = "" if ema_momentum is None else f", momentum {ema_momentum:.2f}"
    dice_axis.plot(
        epochs,
        [r.ema_pseudo_dice for r in history],
        color="black",
        linewidth=2,
        label=f"moving average{smoothing}",
        **style,
    )
    best = _best_epoch(history)
    if best is not None:
        dice_axis.plot(
            [epochs[best]],
            [history[best].ema_pseudo_dice],
            marker="*",
            markersize=14,
            color=OKABE_ITO[0],
            linestyle="none",
            label=f"checkpoint_best.pt (epoch {epochs[best]})",
        )
    dice_axis.set_ylabel("pseudo Dice")
    dice_axis.set_ylim(0, 1.02)
    handles, labels = loss_axis.get_legend_handles_labels()
    more_handles, more_labels = dice_axis.get_legend_handles_labels()
    figure.legend(
        handles + more_handles,
        labels + more_labels,
        loc="outside right upper",
        fontsize=9,
        frameon=False,
    )
    lr_axis.plot(epochs, [r.lr for r in history], color=OKABE_ITO[6], **style)
    lr_axis.set_ylabel("learning rate")
    time_axis.plot(epochs, [r.seconds for r in history], color="0.4", **style)
    time_axis.set_ylabel("seconds per epoch")
    time_axis.set_xlabel("epoch")
    if len(epochs) <= 15:
        time_axis.set_xticks(epochs)
    else:
        time_axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    if len(epochs) == 1:
        time_axis.set_xlim(0.5, 1.5)
    for axis in (loss_axis, lr_axis, time_axis):
        axis.grid(alpha=0.3)
    if title:
        figure.suptitle(title, fontsize=12)
    return figure


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan
