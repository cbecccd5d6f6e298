"""Intermediate values of a trial: the smoothed pseudo-Dice, reported per epoch for pruning.

A trial trains several units (dataset x configuration x fold) one after the other, each for
a number of epochs that may depend on a time budget. Steps are therefore the percent of the
trial's training done (1..100): after an epoch of unit ``u`` (0-based) of ``U``, at epoch
``e`` of ``E``, the step is ``floor(100 * (u + e / E) / U)``. Every step from the last one
reported up to that one receives the current value, so all trials have values at the same
steps and the pruners compare like with like. The value is the mean, over the units trained
so far, of each unit's latest moving average (EMA) of the mean pseudo-Dice.
"""

from __future__ import annotations

import math

import optuna

from autoseg.log import get_logger
from autoseg.trainers.session import Session

__all__ = ["MAX_STEP", "IntermediateReporter"]

MAX_STEP = 100
_log = get_logger(__name__)


class IntermediateReporter:
    """Reports a trial's intermediate values and prunes it (an ``on_epoch`` callback).

    Args:
        trial: The running Optuna trial.
        num_units: Trainings in the trial (datasets x configurations x folds), >= 1.
    """

    def __init__(self, trial: optuna.Trial, num_units: int) -> None:
        self.trial = trial
        self.num_units = max(1, int(num_units))
        self.dataset = ""
        self.last_step = 0
        self._ema: dict[tuple[str, str, str], float] = {}

    def start_dataset(self, name: str) -> None:
        """The units that follow belong to dataset ``name``."""
        self.dataset = name

    def current_value(self) -> float:
        """Mean over the units so far of their latest EMA pseudo-Dice (NaN if none yet)."""
        values = [v for v in self._ema.values() if math.isfinite(v)]
        return sum(values) / len(values) if values else math.nan

    def step_after(self, session: Session) -> int:
        """The step (1..100) reached once the session's latest epoch is counted."""
        state = session.state
        done_in_unit = 1.0 if state.finished else state.epoch / max(1, state.total_epochs)
        units_before = len(self._ema) - 1
        fraction = (units_before + min(1.0, done_in_unit)) / self.num_units
        return max(0, min(MAX_STEP, math.floor(MAX_STEP * fraction + 1e-9)))

    def on_epoch(self, session: Session) -> None:
        """Record the epoch, report the new steps, and prune if the pruner says so.

        Raises:
            optuna.TrialPruned: if the trial should stop.
        """
        key = (self.dataset, session.spec.config_name, str(session.spec.fold))
        ema = session.state.ema
        self._ema[key] = math.nan if ema is None else float(ema)
        step = self.step_after(session)
        value = self.current_value()
        if step <= self.last_step or not math.isfinite(value):
            return
        for s in range(self.last_step + 1, step + 1):
            self.trial.report(value, s)
        self.last_step = step
        if self.trial.should_prune():
            message = f"pruned at {step}% of its training (mean EMA pseudo-Dice {value:.4f})"
            raise optuna.TrialPruned(message)
