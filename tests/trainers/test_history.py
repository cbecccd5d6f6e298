"""Epoch records, log.jsonl and progress.png."""

from __future__ import annotations

import json
import math
from pathlib import Path

from autoseg.trainers.history import EpochRecord, append_record, plot_progress, rewrite_log
from autoseg.trainers.state import TrainingState


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


def test_progress_png_is_written(tmp_path: Path) -> None:
    path = tmp_path / "progress.png"
    plot_progress([_record(e) for e in range(4)], path, class_names=("lesion", "core"))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_state_ema_and_json_round_trip() -> None:
    state = TrainingState(total_epochs=5, epochs_source="--epochs")
    assert state.update_ema(0.5) and state.ema == 0.5
    assert state.update_ema(1.0) and state.ema == 0.9 * 0.5 + 0.1
    assert not state.update_ema(0.0) and state.epochs_since_best == 1
    assert not state.update_ema(math.nan) and state.ema == 0.9 * 0.55
    state.history.append(_record(0))
    again = TrainingState.from_dict(json.loads(state.to_json()))
    assert again.ema == state.ema and again.best_ema == state.best_ema
    assert again.history[0].epoch == 0
