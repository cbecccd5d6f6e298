"""Time budgets: durations, epochs that fit, covered voxels."""

from __future__ import annotations

import pytest

from autoseg.errors import ConfigError
from autoseg.trainers.time_budget import (
    epochs_for_budget,
    estimate_validation_seconds,
    parse_duration,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90m", 5400), ("2h", 7200), ("45s", 45), ("1h30m", 5400), ("1.5h", 5400), ("1d", 86400)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["90", "m", "2x", "0s", "-5m", "1h 30"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="duration"):
        parse_duration(text)


def test_epochs_for_budget() -> None:
    # 100 s budget, 10 s used by one epoch, 8 s per epoch, 20 s of validation: 1 + 8 epochs
    assert epochs_for_budget(100, 10, 1, 8, 20, max_epochs=1000) == 9
    assert epochs_for_budget(100, 10, 1, 8, 20, max_epochs=5) == 5
    assert epochs_for_budget(10, 50, 3, 8, 20, max_epochs=1000) == 3  # over budget: stop now
    assert epochs_for_budget(10, 50, 0, 8, 20, max_epochs=1000) == 1


def test_estimate_validation_seconds() -> None:
    assert estimate_validation_seconds([1000, 3000], 1e-3, 8) == pytest.approx(32 + 2 * 2.0)


def _fake_session(state: object) -> object:
    from types import SimpleNamespace

    return SimpleNamespace(
        state=state,
        config=SimpleNamespace(final_validation=False),
        schedule=SimpleNamespace(total_epochs=0),
        save_seconds=0.0,
    )


def test_fit_epochs_decides_then_raises_early_and_lowers_late() -> None:
    import math

    import torch

    from autoseg.trainers.epoch_budget import fit_epochs
    from autoseg.trainers.history import EpochRecord
    from autoseg.trainers.state import TrainingState
    from autoseg.trainers.steps import EpochTimings, ValidationResult

    def record(epoch: int, seconds: float) -> EpochRecord:
        return EpochRecord(epoch, 1.0, 1.0, (0.5,), 0.5, 0.01, seconds)

    state = TrainingState(1000, "--time-budget", 100.0, iters_per_epoch=100, epochs_decided=False)
    session = _fake_session(state)
    timings = EpochTimings(loss=1.0, median_iteration_seconds=0.1, train_seconds=11.0)
    validation = ValidationResult(1.0, torch.zeros((1, 3)), 1.0, math.nan)
    state.history, state.epoch, state.elapsed_seconds = [record(0, 12.0)], 1, 12.0
    assert fit_epochs(session, timings, validation)  # type: ignore[arg-type]
    assert state.total_epochs == 1 + int(88 / (11 * 1.02)) == 8 and state.epochs_decided
    assert session.schedule.total_epochs == 8  # type: ignore[attr-defined]
    state.history.append(record(1, 5.0))
    state.epoch, state.elapsed_seconds = 2, 17.0
    assert fit_epochs(session, timings, validation)  # type: ignore[arg-type]
    assert state.total_epochs == 2 + int(83 / (5 * 1.02))  # raised: faster than planned
    state.history += [record(e, 20.0) for e in (2, 3, 4)]
    state.epoch, state.elapsed_seconds = 5, 77.0
    assert fit_epochs(session, timings, validation)  # type: ignore[arg-type]
    recent = (5 + 20 * 3) / 4 * 1.02
    assert state.total_epochs == 5 + int(23 / recent)  # lowered: slower than planned
    assert not fit_epochs(session, timings, validation)  # type: ignore[arg-type]
