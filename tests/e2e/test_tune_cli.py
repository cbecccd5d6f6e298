"""``autoseg tune`` end to end on a tiny phantom: a 3-trial study killed mid-trial and resumed,
two worker processes sharing one SQLite study, ``--show`` and best_heuristics.json round-trip
into ``autoseg plan``, pruning, failed plans, and one-line errors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from autoseg.cli import main
from autoseg.planner.heuristics import PlannerHeuristics
from autoseg.planner.plans import load_plans
from autoseg.tuning.objective import HEURISTICS_ATTR
from autoseg.tuning.progress import IntermediateReporter
from autoseg.tuning.study import DEFAULTS_ATTR
from autoseg.tuning.worker import REASON_ATTR

pytestmark = pytest.mark.e2e
STUDY = "autoseg-Phantom"


@pytest.fixture
def one_thread() -> object:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def setup(
    fast_tune: tuple[Path, list[str]], tmp_path: Path, one_thread: object
) -> tuple[Path, Path, list[str]]:
    """(dataset, work folder, the common tune arguments: ``fast_tune``'s and ``--work``)."""
    dataset, fast = fast_tune
    work = tmp_path / "work"
    return dataset, work, [*fast, "--work", str(work)]


def _study(work: Path) -> optuna.Study:
    return optuna.load_study(study_name=STUDY, storage=f"sqlite:///{work / 'tuning.sqlite3'}")


def _command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "autoseg", "-q", "tune", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path.cwd())}


def test_three_trials_killed_mid_trial_then_resumed(
    setup: tuple[Path, Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, work, common = setup
    args = [*common, "--trials", "3", "--epochs", "3"]
    process = subprocess.Popen(_command(args), env=_env())
    studies = work / "tuning/studies" / STUDY
    # The first trial after the defaults' that trains (a sampled trial whose plan fails is
    # pruned before it trains, so which one that is depends on the sampler's draws).
    deadline = time.monotonic() + 240
    killed = None
    while time.monotonic() < deadline and process.poll() is None and killed is None:
        for log in studies.glob("trial_*/Phantom/results/unet3d/fold_0/log.jsonl"):
            number = int(log.parents[4].name.removeprefix("trial_"))
            if number >= 1 and log.read_text().strip():
                killed = number
        time.sleep(0.02)
    assert process.poll() is None and killed is not None, "the worker ended before the kill"
    process.send_signal(signal.SIGKILL)  # in that trial, after its first epoch
    process.wait(timeout=30)
    before = [t.state for t in _study(work).trials]
    assert before[0] == TrialState.COMPLETE and before[killed] == TrialState.RUNNING
    assert all(s == TrialState.PRUNED for s in before[1:killed])
    time.sleep(3.5)  # heartbeat 1 s: silent for > 2 s means dead
    # A failed trial counts as finished: one more than the killed trial's number retries it.
    args = [*common, "--trials", str(killed + 2), "--epochs", "3"]
    assert main(["tune", *args]) == 0
    trials = _study(work).trials
    assert [t.state for t in trials[killed:]] == [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[-1].params == trials[killed].params  # the killed trial's parameters, retried
    assert trials[-1].system_attrs["failed_trial"] == killed
    out = capsys.readouterr().out
    assert re.search(rf"trial\s+{killed + 1}\s+COMPLETE", out)
    assert f"finished trials: {killed + 2} of {killed + 2}" in out
    assert main(["tune", *args]) == 0  # the study is full: nothing more to do
    assert "no trial run" in capsys.readouterr().out and len(_study(work).trials) == killed + 2


def _outcomes(stdout: str) -> dict[int, str]:
    return {int(n): s for n, s in re.findall(r"^\s+trial\s+(\d+)\s+(\w+)", stdout, re.M)}


def test_two_workers_share_one_sqlite_study(
    setup: tuple[Path, Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, work, common = setup
    args = [*common, "--trials", "3", "--epochs", "2"]
    process = subprocess.Popen(_command(args), env=_env(), stdout=subprocess.PIPE, text=True)
    first = work / "tuning/studies" / STUDY / "trial_0"
    deadline = time.monotonic() + 240
    while not first.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert main(["tune", *args]) == 0  # a second worker joins while trial 0 runs
    here = _outcomes(capsys.readouterr().out)
    there = _outcomes(process.communicate(timeout=300)[0])
    assert process.returncode == 0
    assert there and here, f"both workers ran trials: {there} / {here}"
    assert not set(here) & set(there), "a trial was run twice"
    finished = [t for t in _study(work).trials if t.state.is_finished()]
    assert sorted(t.number for t in finished) == sorted([*here, *there])  # none lost
    assert len(finished) == 3 and all(t.state == TrialState.COMPLETE for t in finished)
    assert finished[0].number == 0 and finished[0].user_attrs[DEFAULTS_ATTR] is True
    assert len({t.user_attrs["worker"] for t in finished}) == 2


def test_show_writes_best_heuristics_that_plan_accepts(
    setup: tuple[Path, Path, list[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dataset, work, common = setup
    assert main(["tune", *common, "--trials", "2", "--epochs", "1"]) == 0
    capsys.readouterr()
    assert main(["tune", str(dataset), "--work", str(work), "--show"]) == 0
    out = capsys.readouterr().out
    best = _study(work).best_trial
    assert f"best trial: #{best.number}" in out
    exported = work / "tuning/studies" / STUDY / "best_heuristics.json"
    assert f"best heuristics: {exported}" in out
    assert (exported.parent / "optimization_history.png").is_file()
    assert (exported.parent / "param_importances.png").is_file()
    plan_args = ["plan", str(dataset), "--work", str(tmp_path / "replan"), "--device", "cpu"]
    assert main([*plan_args, "--heuristics", str(exported), "-np", "1"]) == 0
    plans = load_plans(tmp_path / "replan" / "plans.json")
    assert plans.heuristics == PlannerHeuristics.from_dict(best.user_attrs[HEURISTICS_ATTR])
    assert plans.heuristics.cpu_unet_max_features == 16  # the base's untuned value too
    capsys.readouterr()
    other = ["tune", *common, "--trials", "2", "--epochs", "2"]
    assert main(other) == 2  # joining the study with another training length
    assert "epochs: study 1, here 2" in capsys.readouterr().err


def test_a_bad_intermediate_value_prunes_the_trial(
    setup: tuple[Path, Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, work, common = setup

    def forced(self: IntermediateReporter) -> float:
        return 1.0 if self.trial.number == 0 else 0.0  # trial 1 looks hopeless

    monkeypatch.setattr(IntermediateReporter, "current_value", forced)
    args = [*common, "--trials", "2", "--epochs", "2", "--pruner", "median"]
    assert main(["tune", *args, "--pruner-startup-trials", "1", "--pruner-warmup", "0"]) == 0
    first, second = _study(work).trials
    assert first.state == TrialState.COMPLETE and sorted(first.intermediate_values) == list(
        range(1, 101)
    )
    assert second.state == TrialState.PRUNED
    assert sorted(second.intermediate_values) == list(range(1, 51))  # stopped after epoch 1
    assert second.user_attrs[REASON_ATTR].startswith("pruned at 50% of its training")
    fold = work / "tuning/studies" / STUDY / "trial_1/Phantom/results/unet3d/fold_0"
    assert not (fold / "validation" / "summary.json").exists()


def test_a_plan_that_fails_prunes_the_trial_and_tuning_goes_on(
    fast_tune: tuple[Path, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, fast = fast_tune
    base = Path(fast[fast.index("--base-heuristics") + 1])  # nothing fits:
    base.write_text(json.dumps({**json.loads(base.read_text()), "cpu_ram_fraction": 1e-6}))
    work = tmp_path / "work"
    assert main(["tune", *fast, "--work", str(work), "--trials", "2", "--epochs", "1"]) == 0
    trials = _study(work).trials
    assert [t.state for t in trials] == [TrialState.PRUNED, TrialState.PRUNED]
    assert all("planning Phantom failed" in t.user_attrs[REASON_ATTR] for t in trials)
    assert main(["tune", "--work", str(work), "--show"]) == 0
    out = capsys.readouterr().out
    assert "no completed trial yet" in out and "planning Phantom failed" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--storage", "nosuchdriver://host/db"], "cannot open the Optuna storage"),
        (["--configs", "unet"], "unknown configuration 'unet'"),
        (["--folds", "all"], "use 0..4, not all"),
        (["--budget-minutes", "5", "--epochs", "1"], "not both"),
        (["--trials", "0"], "expected a positive integer"),
    ],
)
def test_errors_are_one_line_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert main(["tune", str(tmp_path), "--work", str(tmp_path / "w"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_show_and_tune_without_their_inputs_fail_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tune", "--work", str(tmp_path), "--device", "cpu"]) == 2
    assert "at least one DATASET" in capsys.readouterr().err
    assert main(["tune", "--work", str(tmp_path), "--show"]) == 2
    assert "holds no studies" in capsys.readouterr().err
    assert main(["tune", "--work", str(tmp_path), "--show", "--study", "nope"]) == 2
    assert "no study 'nope'" in capsys.readouterr().err
