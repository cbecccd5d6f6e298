"""Two real ``autoseg tune`` workers (the CLI, as processes, each with its own ``--work`` like
two machines) on one study, once through SQLite and once through a real PostgreSQL server:
one worker is SIGKILLed while its trial runs, the other finishes the study, and every trial
is accounted for (the killed one FAIL, the rest complete or pruned, none left running)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from autoseg.tuning.storage import open_storage

pytestmark = pytest.mark.e2e
STUDY = "shared"
TRIALS = 3


def _worker(args: list[str], log: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path.cwd())}
    command = [sys.executable, "-m", "autoseg", "-q", "tune", *args]
    with open(log, "w") as err:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=err, text=True)


def _trials(storage: optuna.storages.BaseStorage) -> list[FrozenTrial]:
    try:
        return optuna.load_study(study_name=STUDY, storage=storage).get_trials(deepcopy=False)
    except KeyError:  # not created yet
        return []


def _pid(trial: FrozenTrial) -> int | None:
    worker = trial.user_attrs.get("worker")
    return int(str(worker).rsplit(":", 1)[1]) if worker else None


def _kill_mid_trial(
    storage: optuna.storages.BaseStorage, workers: list[subprocess.Popen[str]]
) -> tuple[int, int]:
    """SIGKILL the first worker seen with a trial that has reported an epoch; returns
    (the killed worker's index, its trial number)."""
    pids = {w.pid: i for i, w in enumerate(workers)}
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and all(w.poll() is None for w in workers):
        for trial in _trials(storage):
            pid = _pid(trial)
            if trial.state == TrialState.RUNNING and trial.intermediate_values and pid in pids:
                os.kill(pid, signal.SIGKILL)
                return pids[pid], trial.number
        time.sleep(0.05)
    raise AssertionError("no worker could be killed mid-trial (both must still be running)")


def test_two_workers_one_killed_mid_trial(
    storage_url: str, fast_tune: tuple[Path, list[str]], tmp_path: Path
) -> None:
    _, common = fast_tune
    storage = open_storage(storage_url)  # one connection pool for all the polling
    study = ["--storage", storage_url, "--study", STUDY]
    args = [*common, *study, "--trials", str(TRIALS), "--epochs", "3", "--pruner", "none"]
    workers = [
        _worker([*args, "--work", str(tmp_path / f"machine_{i}")], tmp_path / f"err_{i}.log")
        for i in range(2)
    ]
    try:
        victim, killed = _kill_mid_trial(storage, workers)
        killed_at = time.monotonic()
        survivor = workers[1 - victim]
        out = survivor.communicate(timeout=300)[0]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert workers[victim].wait() == -signal.SIGKILL
    errors = (tmp_path / f"err_{1 - victim}.log").read_text()
    assert survivor.returncode == 0, errors
    time.sleep(max(0.0, killed_at + 3.0 - time.monotonic()))  # heartbeat 1 s: dead after 2 s
    show = [*study, "--work", str(tmp_path / "machine_0"), "--heartbeat", "1", "--show"]
    shown = subprocess.run(
        [sys.executable, "-m", "autoseg", "-q", "tune", *show],
        env={**os.environ, "PYTHONPATH": str(Path.cwd())},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    trials = {t.number: t for t in _trials(storage)}
    assert trials[killed].state == TrialState.FAIL  # found silent, failed, retried once
    assert not [n for n, t in trials.items() if t.state == TrialState.RUNNING]
    finished = {n: t for n, t in trials.items() if t.state.is_finished()}
    assert len(finished) == TRIALS
    others = [t.state for n, t in finished.items() if n != killed]
    assert set(others) <= {TrialState.COMPLETE, TrialState.PRUNED}
    ran_here = {int(n) for n in re.findall(r"^\s+trial\s+(\d+)\s+\w+", out, re.M)}
    assert ran_here, f"the surviving worker ran no trial:\n{out}"
    pids = {workers[victim].pid, survivor.pid}
    assert all(_pid(t) in pids for t in finished.values())  # every trial ran on a worker
    assert ran_here == {n for n, t in finished.items() if _pid(t) == survivor.pid}
    retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1 and retries[0].params == trials[killed].params
    for number, trial in trials.items():  # what is neither finished nor running: the retry
        if number not in finished:
            assert trial.state == TrialState.WAITING and trial is retries[0]
    assert "1 fail" in shown.stdout and "summary: " in shown.stdout
    assert (tmp_path / "machine_0/tuning/studies" / STUDY / "summary.md").is_file()
