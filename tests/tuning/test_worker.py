"""The study and the worker loop with cheap objectives (no training): defaults enqueued once,
settings checked, --trials counts finished trials, resume continues the numbering, failures
and pruning recorded, and two processes share one SQLite study exactly."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from autoseg.errors import ConfigError
from autoseg.tuning import worker
from autoseg.tuning.storage import open_storage
from autoseg.tuning.study import DEFAULTS_ATTR, make_sampler, open_study
from autoseg.tuning.worker import REASON_ATTR, TrialFailure, run_worker

SETTINGS = {"datasets": ["A"], "configs": ["unet3d"], "folds": [0]}
DEFAULTS = {"x": 0.5, "k": "b"}


def objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", 0.0, 1.0)
    k = trial.suggest_categorical("k", ["a", "b", "c"])
    return -((x - 0.3) ** 2) + (0.1 if k == "c" else 0.0)


def _study(url: str) -> tuple[optuna.Study, optuna.storages.RDBStorage]:
    storage = open_storage(url, heartbeat_seconds=1)
    return open_study(storage, "s", SETTINGS, DEFAULTS, wait_seconds=0.0), storage


def _run(url: str, trials: int, fn: Any = objective) -> list[Any]:
    study, storage = _study(url)
    return run_worker(study, storage, fn, trials=trials, seed=0, heartbeat_seconds=1)


def test_defaults_are_enqueued_once_and_run_first(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    _study(url)
    study, _ = _study(url)  # joining does not enqueue again
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].user_attrs[DEFAULTS_ATTR] is True
    _run(url, 3)
    first = study.trials[0]
    assert first.params == DEFAULTS and first.state == TrialState.COMPLETE


def test_trials_means_finished_trials_and_resume_continues(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    assert [o.number for o in _run(url, 4)] == [0, 1, 2, 3]
    assert _run(url, 4) == []  # already there: resuming adds nothing
    assert [o.number for o in _run(url, 6)] == [4, 5]
    study, _ = _study(url)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 6


def test_sampling_is_reproducible_per_seed(tmp_path: Path) -> None:
    params = []
    for name in ("a", "b"):
        _run(f"sqlite:///{tmp_path / name}.sqlite3", 4)
        study, _ = _study(f"sqlite:///{tmp_path / name}.sqlite3")
        params.append([t.params for t in study.trials])
    assert params[0] == params[1]
    assert len({json.dumps(p, sort_keys=True) for p in params[0]}) == 4


def test_each_trial_number_gets_its_own_sampler_stream() -> None:
    draws = set()
    for number in range(4):
        study = optuna.create_study(sampler=make_sampler(0, number))
        draws.add(study.ask().suggest_float("x", 0.0, 1.0))
    assert len(draws) == 4


def test_failed_and_pruned_trials_are_recorded_and_tuning_goes_on(tmp_path: Path) -> None:
    def flaky(trial: optuna.Trial) -> float:
        if trial.number == 1:
            raise TrialFailure("disk full")
        if trial.number == 2:
            trial.set_user_attr(REASON_ATTR, "planning failed: nothing fits")
            raise optuna.TrialPruned("planning failed: nothing fits")
        return objective(trial)

    outcomes = _run(f"sqlite:///{tmp_path / 'db.sqlite3'}", 4, flaky)
    assert [o.state for o in outcomes] == ["COMPLETE", "FAIL", "PRUNED", "COMPLETE"]
    assert outcomes[1].reason == "disk full"
    study, _ = _study(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    assert study.trials[1].user_attrs[REASON_ATTR] == "disk full"
    assert study.trials[2].user_attrs[REASON_ATTR] == "planning failed: nothing fits"


def test_a_bug_fails_the_trial_and_is_raised(tmp_path: Path) -> None:
    def buggy(trial: optuna.Trial) -> float:
        raise ZeroDivisionError("oops")

    with pytest.raises(ZeroDivisionError):
        _run(f"sqlite:///{tmp_path / 'db.sqlite3'}", 3, buggy)
    study, _ = _study(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    assert [t.state for t in study.trials] == [TrialState.FAIL]
    assert "ZeroDivisionError" in study.trials[0].user_attrs[REASON_ATTR]


def test_joining_with_other_settings_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    _study(url)
    storage = open_storage(url)
    other = {**SETTINGS, "configs": ["deepmedic"]}
    with pytest.raises(ConfigError, match=r"configs: study \['unet3d'\], here \['deepmedic'\]"):
        open_study(storage, "s", other, DEFAULTS, wait_seconds=0.0)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_worker_losing_the_race_requeues_its_empty_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    study, storage = _study(url)
    other = study.ask()  # another worker's trial (the defaults), started first
    monkeypatch.setattr(worker, "_finished_or_running", lambda study: 0)  # both saw room
    assert run_worker(study, storage, objective, trials=1, seed=0, heartbeat_seconds=1) == []
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.RUNNING, TrialState.WAITING]
    assert trials[1].params == {}
    study.tell(other, 0.0)
    monkeypatch.undo()
    outcomes = run_worker(study, storage, objective, trials=2, seed=0, heartbeat_seconds=1)
    assert [o.number for o in outcomes] == [1]  # the queued trial runs when there is room


WORKER = textwrap.dedent(
    """
    import sys, time, optuna
    from autoseg.tuning.storage import open_storage
    from autoseg.tuning.study import open_study
    from autoseg.tuning.worker import run_worker

    def objective(trial):
        time.sleep(0.15)
        bonus = trial.suggest_categorical("k", ["a", "b"]) == "a"
        return trial.suggest_float("x", 0.0, 1.0) + bonus

    storage = open_storage(sys.argv[1], heartbeat_seconds=1)
    study = open_study(storage, "s", {"datasets": ["A"]}, {"x": 0.5, "k": "b"})
    outcomes = run_worker(study, storage, objective, trials=int(sys.argv[2]), seed=0,
                          heartbeat_seconds=1)
    print(" ".join(str(o.number) for o in outcomes))
    """
)


def test_two_processes_share_one_sqlite_study_exactly(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    command = [sys.executable, str(script), url, "12"]
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=Path.cwd())
        for _ in range(2)
    ]
    ran = [p.communicate(timeout=120)[0].split() for p in processes]
    assert [p.returncode for p in processes] == [0, 0]
    assert all(ran), f"both workers ran trials: {ran}"
    numbers = [int(n) for r in ran for n in r]
    assert len(numbers) == len(set(numbers)) == 12  # no trial lost, none run twice
    study = optuna.load_study(study_name="s", storage=url)
    finished = [t for t in study.trials if t.state.is_finished()]
    assert sorted(t.number for t in finished) == sorted(numbers)
    assert all(t.state == TrialState.COMPLETE for t in finished)
    leftovers = [t for t in study.trials if not t.state.is_finished()]
    assert all(t.state == TrialState.WAITING and not t.params for t in leftovers)
