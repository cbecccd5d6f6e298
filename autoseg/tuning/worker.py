"""One tuning worker: ask a trial, run the objective, tell the result, until the study is full.

``--trials N`` means "until the study holds N finished trials" (complete, pruned or failed),
so re-running a command resumes a study instead of adding N more. Several workers share one
study exactly: a worker starts no trial once finished + running trials reach N; in the rare
race where two workers ask at once, each counts the finished trials plus the running ones
that started before its own, and the one that would exceed N puts its (still empty) trial
back in the queue as WAITING, for a later run, and stops. Each running trial records a
heartbeat, so a killed worker's trial is marked FAIL (and queued once more with the same
parameters) by the next worker that looks; until then it counts as running.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from autoseg.errors import AutosegError
from autoseg.log import get_logger
from autoseg.tuning.study import make_sampler

__all__ = ["REASON_ATTR", "TrialFailure", "TrialOutcome", "fail_stale_trials", "run_worker"]

REASON_ATTR = "reason"
"""User attribute holding why a trial was pruned or failed."""
_log = get_logger(__name__)

Objective = Callable[["optuna.Trial"], float]


class TrialFailure(Exception):
    """A trial failed for a known reason (recorded in its user attributes); tuning goes on."""


@dataclass(frozen=True)
class TrialOutcome:
    """What one trial run by this worker ended as.

    Attributes:
        number: The trial number in the study.
        state: "COMPLETE", "PRUNED" or "FAIL".
        value: The objective (COMPLETE only).
        reason: Why it was pruned or failed, if known.
    """

    number: int
    state: str
    value: float | None
    reason: str | None


class _Heartbeat:
    """Records a trial's heartbeat every ``interval`` seconds in a daemon thread."""

    def __init__(self, storage: optuna.storages.RDBStorage, trial_id: int, interval: int) -> None:
        self._storage, self._trial_id, self._interval = storage, trial_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="tune-heartbeat")

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._storage.record_heartbeat(self._trial_id)
            except Exception as err:  # a busy database must not kill the trial
                _log.warning("could not record the trial heartbeat: %s", err)

    def __enter__(self) -> _Heartbeat:
        self._storage.record_heartbeat(self._trial_id)  # a killed worker's trial goes stale
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def fail_stale_trials(study: optuna.Study) -> None:
    """Mark trials whose worker stopped sending heartbeats FAIL (and queue their retry)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _count_ahead(study: optuna.Study, number: int) -> int:
    """Finished trials plus running trials that started before trial ``number``."""
    trials = study.get_trials(deepcopy=False)
    mine = next(t for t in trials if t.number == number)
    key = (mine.datetime_start, number)
    ahead = 0
    for t in trials:
        if t.state.is_finished():
            ahead += 1
        elif t.state == TrialState.RUNNING and t.number != number:
            ahead += int(t.datetime_start is not None and (t.datetime_start, t.number) < key)
    return ahead


def _finished_or_running(study: optuna.Study) -> int:
    trials = study.get_trials(deepcopy=False)
    return sum(t.state.is_finished() or t.state == TrialState.RUNNING for t in trials)


def _ask(study: optuna.Study) -> optuna.Trial:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        return study.ask()


def run_worker(
    study: optuna.Study,
    storage: optuna.storages.RDBStorage,
    objective: Objective,
    *,
    trials: int,
    seed: int,
    heartbeat_seconds: int,
) -> list[TrialOutcome]:
    """Run trials of ``study`` until it holds ``trials`` finished ones (see the module doc).

    The objective raises ``optuna.TrialPruned`` to prune, :class:`TrialFailure` or an
    :class:`~autoseg.errors.AutosegError` to fail the trial and go on; any other exception
    (or Ctrl-C) fails the trial and is re-raised.

    Returns:
        The outcomes of the trials this worker ran, in order.
    """
    study_id = storage.get_study_id_from_name(study.study_name)
    outcomes: list[TrialOutcome] = []
    while True:
        fail_stale_trials(study)
        if _finished_or_running(study) >= trials:  # nothing left to start
            break
        trial = _ask(study)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        if _count_ahead(study, trial.number) >= trials:
            storage.set_trial_state_values(trial_id, TrialState.WAITING)
            break
        study.sampler = make_sampler(seed, trial.number)
        with _Heartbeat(storage, trial_id, heartbeat_seconds):
            outcome = _run_trial(study, trial, objective)
        outcomes.append(outcome)
    return outcomes


def _run_trial(study: optuna.Study, trial: optuna.Trial, objective: Objective) -> TrialOutcome:
    _log.info("trial %d started", trial.number)
    try:
        value = float(objective(trial))
    except optuna.TrialPruned as err:
        reason = str(err) or "pruned"
        if REASON_ATTR not in trial.user_attrs:
            trial.set_user_attr(REASON_ATTR, reason)
        study.tell(trial, state=TrialState.PRUNED)
        _log.info("trial %d pruned: %s", trial.number, reason)
        return TrialOutcome(trial.number, "PRUNED", None, reason)
    except (TrialFailure, AutosegError) as err:
        trial.set_user_attr(REASON_ATTR, str(err))
        study.tell(trial, state=TrialState.FAIL)
        _log.error("trial %d failed: %s", trial.number, err)
        return TrialOutcome(trial.number, "FAIL", None, str(err))
    except BaseException as err:
        trial.set_user_attr(REASON_ATTR, repr(err))
        study.tell(trial, state=TrialState.FAIL)
        raise
    study.tell(trial, value)
    _log.info("trial %d finished: %.4f (best so far %.4f)", trial.number, value, study.best_value)
    return TrialOutcome(trial.number, "COMPLETE", value, None)
