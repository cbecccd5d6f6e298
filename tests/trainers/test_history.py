"""Epoch records, log.jsonl and progress.png."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from autoseg.trainers.history import EpochRecord, append_record, plot_progress, rewrite_log
from autoseg.trainers.state import EMA_MOMENTUM, TrainingState, ema_momentum


def _record(epoch: int) -> EpochRecord:
    return EpochRecord(epoch, 1.0 / (epoch + 1), 0.9, (0.5, math.nan), 0.4, 0.01, 2.5)


def test_log_lines_round_trip_and_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    for epoch in range(3):
        append_record(path, _record(epoch))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [0, 1, 2]
    assert lines[0]["pseudo_dice"] == [0.5, None]  # NaN -> null
    assert set(lines[0]) == {
        "epoch", "train_loss", "val_loss", "pseudo_dice", "ema_pseudo_dice", "lr", "seconds"
    }  # fmt: skip
    back = EpochRecord.from_dict(lines[1])
    assert back.epoch == 1 and math.isnan(back.pseudo_dice[1])
    rewrite_log(path, [_record(0)])
    assert len(path.read_text().splitlines()) == 1


def test_state_ema_and_json_round_trip() -> None:
    state = TrainingState(total_epochs=1000, epochs_source="--epochs")
    assert state.update_ema(0.5) and state.ema == 0.5
    assert state.update_ema(1.0) and state.ema == 0.9 * 0.5 + 0.1
    assert not state.update_ema(0.0) and state.epochs_since_best == 1
    assert not state.update_ema(math.nan) and state.ema == 0.9 * 0.55
    state.history.append(_record(0))
    again = TrainingState.from_dict(json.loads(state.to_json()))
    assert again.ema == state.ema and again.best_ema == state.best_ema
    assert again.history[0].epoch == 0


@pytest.mark.parametrize(
    ("epochs", "momentum"), [(1, 0.0), (10, 0.0), (20, 0.5), (50, 0.8), (100, 0.9), (1000, 0.9)]
)
def test_ema_momentum_adapts_to_the_run_length(epochs: int, momentum: float) -> None:
    assert ema_momentum(epochs) == pytest.approx(momentum)
    assert ema_momentum(epochs) <= EMA_MOMENTUM


def test_short_runs_do_not_lag_behind_the_pseudo_dice() -> None:
    # A rising pseudo-Dice over 10 epochs: nnU-Net's fixed 0.9 would end at 0.49 while the
    # epoch's value is 0.82; the adapted average is the value itself, and the best checkpoint
    # is the last, best epoch.
    rising = [0.1 + 0.08 * e for e in range(10)]
    fixed = rising[0]
    for value in rising[1:]:
        fixed = 0.9 * fixed + 0.1 * value
    assert fixed < 0.5
    state = TrainingState(total_epochs=10, epochs_source="--epochs")
    improved = [state.update_ema(v) for v in rising]
    assert state.ema == pytest.approx(rising[-1]) and all(improved)
    state = TrainingState(total_epochs=50, epochs_source="--epochs")
    for value in rising:
        state.update_ema(value)
    assert fixed < state.ema < rising[-1]  # 0.8: smoothed, with less lag


def _rising(epochs: int) -> list[EpochRecord]:
    return [
        EpochRecord(
            e,
            1 / (e + 1),
            0.9 - 0.05 * e,
            (0.3 + 0.05 * e, 0.2 + 0.06 * e),
            0.25 + 0.04 * e,
            0.01,
            3.0,
        )
        for e in range(epochs)
    ]


def _texts(figure) -> list[str]:  # type: ignore[no-untyped-def]
    texts = [t.get_text() for t in figure.texts]
    for legend in figure.legends:
        texts += [t.get_text() for t in legend.get_texts()]
    return texts


@pytest.mark.parametrize("epochs", [1, 12])
def test_progress_picture_content(tmp_path: Path, epochs: int) -> None:
    import matplotlib.image
    from matplotlib.colors import to_rgb

    from autoseg.trainers.history import progress_figure

    history = _rising(epochs)
    options = {
        "class_names": ("left hippocampus (1)", "right hippocampus (2)"),
        "title": "Hippocampus · unet3d · fold 0",
        "ema_momentum": 0.2,
    }
    figure = progress_figure(history, **options)  # type: ignore[arg-type]
    texts = _texts(figure)
    assert "Hippocampus · unet3d · fold 0" in texts
    assert "pseudo Dice: left hippocampus (1)" in texts and not any("class" in t for t in texts)
    assert f"checkpoint_best.pt (epoch {epochs})" in texts  # rising: the last epoch is best
    assert "moving average, momentum 0.20" in texts
    # The legend sits outside every axes: their boxes do not overlap.
    figure.canvas.draw()  # lays the figure out
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    legend_box = figure.legends[0].get_window_extent(renderer)
    for axes in figure.axes:
        assert not legend_box.overlaps(axes.get_window_extent(renderer))
    # Epochs are 1-based and every point has a marker (one epoch is not a blank plot).
    dice_axis = figure.axes[-1]
    curves = [line for line in figure.axes[0].lines + dice_axis.lines if line.get_marker() != "*"]
    assert len(curves) == 6  # 2 losses, 2 labels, the mean, the moving average
    for line in curves:
        assert line.get_marker() == "o" and list(line.get_xdata()) == list(range(1, epochs + 1))
    path = tmp_path / "progress.png"
    plot_progress(history, path, **options)  # type: ignore[arg-type]
    pixels = np.asarray(matplotlib.image.imread(str(path)))[..., :3]
    assert pixels.shape[:2] == (720, 880)
    for colour in ("#0072B2", "#D55E00", "#E69F00"):  # train loss, val loss, best marker
        rgb = np.asarray(to_rgb(colour))
        assert (np.abs(pixels - rgb).max(axis=-1) < 0.05).sum() > 10, colour
