"""Training curves: ``progress.png`` (losses, pseudo-Dice, learning rate, epoch time).

Matplotlib's object API (no pyplot state), imported inside the function; the PNG is written
atomically so a viewer never sees half a file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from autoseg.atomic import atomic_path

if TYPE_CHECKING:
    from autoseg.trainers.history import EpochRecord

__all__ = ["plot_progress"]


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
