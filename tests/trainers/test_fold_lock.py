"""One trainer per fold: a second ``autoseg train`` of a fold in training stops with one line
naming the first (PID, host, start time); after the first is killed, its lock is taken over.
(Before the lock, both runs exited 0 and log.jsonl interleaved their epochs.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autoseg.cli import main
from autoseg.processes import host_name
from autoseg.workspace import Workspace

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
FAST = ["--iters-per-epoch", "1", "--val-iters", "1", "-np", "0", "--threads", "1"]
FAST += ["--no-validation", "--device", "cpu", "--config", "unet3d"]


def test_second_trainer_of_a_fold_is_refused_then_takes_over_after_a_kill(
    planned: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    fold = planned.fold_paths("unet3d", 0)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.Popen(
        [sys.executable, "-m", "autoseg", "train", "--work", str(planned.root), "fold=0",
         "--epochs", "1000", *FAST],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.time() + 120
        while not fold.log.is_file() and time.time() < deadline and first.poll() is None:
            time.sleep(0.2)
        assert fold.lock.is_file() and first.poll() is None
        capsys.readouterr()
        argv = ["train", "--work", str(planned.root), "fold=0", "--epochs", "1", "--seed", "3"]
        assert main([*argv, *FAST]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        [line] = [line for line in err.splitlines() if "error" in line]
        assert line.startswith(f"autoseg: error: {fold.lock}: unet3d/fold_0 is in use by PID ")
        assert f"PID {first.pid} on host {host_name()} since " in line
        assert first.poll() is None  # the first run goes on
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert fold.lock.is_file()  # a SIGKILL leaves it behind: stale now
    assert main([*argv, *FAST, "--overwrite"]) == 0
    assert f"held by PID {first.pid} on host {host_name()}" in capsys.readouterr().err
    assert not fold.lock.exists() and fold.checkpoint("final").is_file()
    assert len(fold.log.read_text().splitlines()) == 1  # one run's epochs only
