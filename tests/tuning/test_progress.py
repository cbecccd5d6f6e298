"""Intermediate values: percent-of-training steps, the mean EMA, pruning."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import optuna
import pytest

from autoseg.tuning.progress import MAX_STEP, IntermediateReporter


class FakeTrial:
    def __init__(self, prune_after_step: int | None = None) -> None:
        self.reports: dict[int, float] = {}
        self.prune_after_step = prune_after_step

    def report(self, value: float, step: int) -> None:
        assert step not in self.reports
        self.reports[step] = value

    def should_prune(self) -> bool:
        last = max(self.reports)
        return self.prune_after_step is not None and last >= self.prune_after_step


def _session(config: str, epoch: int, total: int, ema: float | None) -> Any:
    state = SimpleNamespace(epoch=epoch, total_epochs=total, ema=ema, finished=epoch >= total)
    return SimpleNamespace(spec=SimpleNamespace(config_name=config, fold=0), state=state)


def test_steps_are_percent_of_training_and_values_average_units() -> None:
    trial = FakeTrial()
    reporter = IntermediateReporter(trial, num_units=2)  # type: ignore[arg-type]
    reporter.start_dataset("A")
    for epoch, ema in enumerate((0.2, 0.4, 0.6), start=1):  # unit 1: 3 epochs
        reporter.on_epoch(_session("unet3d", epoch, 3, ema))
    assert max(trial.reports) == 50 and trial.reports[16] == pytest.approx(0.2)
    assert trial.reports[33] == pytest.approx(0.4) and trial.reports[50] == pytest.approx(0.6)
    reporter.on_epoch(_session("deepmedic", 1, 2, 0.2))  # unit 2: half done -> 75 %
    assert trial.reports[75] == pytest.approx((0.6 + 0.2) / 2)
    reporter.on_epoch(_session("deepmedic", 2, 2, 0.4))
    assert sorted(trial.reports) == list(range(1, MAX_STEP + 1))  # every step, once
    assert trial.reports[MAX_STEP] == pytest.approx(0.5)


def test_undefined_values_are_not_reported() -> None:
    trial = FakeTrial()
    reporter = IntermediateReporter(trial, num_units=1)  # type: ignore[arg-type]
    reporter.on_epoch(_session("unet3d", 1, 4, None))
    assert trial.reports == {} and math.isnan(reporter.current_value())
    reporter.on_epoch(_session("unet3d", 2, 4, 0.3))
    assert sorted(trial.reports) == list(range(1, 51))  # the gap is filled


def test_pruner_decision_raises_trial_pruned() -> None:
    trial = FakeTrial(prune_after_step=40)
    reporter = IntermediateReporter(trial, num_units=1)  # type: ignore[arg-type]
    reporter.on_epoch(_session("unet3d", 1, 4, 0.1))
    with pytest.raises(optuna.TrialPruned, match="pruned at 50%"):
        reporter.on_epoch(_session("unet3d", 2, 4, 0.1))
