"""Workers die with their parent: SIGKILL the main process of a real ``autoseg plan -np 2``
and its worker processes are gone within seconds (they once waited forever, ~235 MB each)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rfind(")") + 2 :].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_plan_workers_die_when_the_main_process_is_killed(
    phantom_dataset: Callable[..., Path], tmp_path: Path
) -> None:
    dataset = phantom_dataset(num_train_cases=16, num_test_cases=0, base_shape=(40, 48, 48))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    main = subprocess.Popen(
        [sys.executable, "-m", "autoseg", "plan", str(dataset), "--work", str(tmp_path / "w"),
         "--device", "cpu", "-np", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.time() + 120
        workers: list[int] = []
        while len(workers) < 2 and time.time() < deadline and main.poll() is None:
            workers = _children(main.pid)
            time.sleep(0.05)
        assert len(workers) >= 2, "the plan never started its two workers"
    finally:
        main.send_signal(signal.SIGKILL)
        main.wait()
    deadline = time.time() + 15
    while any(_alive(pid) for pid in workers) and time.time() < deadline:
        time.sleep(0.1)
    survivors = [pid for pid in workers if _alive(pid)]
    for pid in survivors:  # do not leave them behind on failure either
        os.kill(pid, signal.SIGKILL)
    assert survivors == []


def test_the_watchdog_ends_a_worker_whose_parent_went(tmp_path: Path) -> None:
    """Where PR_SET_PDEATHSIG is missing, a thread polls the parent PID (forced here)."""
    script = (
        "import os, sys, time\n"
        "from autoseg import parallel\n"
        "parallel.sys.platform = 'other'\n"  # take the portable path
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    parent = os.getpid()\n"
        "    if os.fork() == 0:\n"
        "        assert parallel.die_with_parent(parent) == 'watchdog'\n"
        "        print('worker', os.getpid(), flush=True)\n"
        "        time.sleep(60)\n"
        "        os._exit(0)\n"
        "    time.sleep(60)\n"
        "else:\n"
        "    print('middle', pid, flush=True)\n"
        "    time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-c", script]
    top = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    assert top.stdout is not None
    pids = dict(top.stdout.readline().split() for _ in range(2))
    middle, worker = int(pids["middle"]), int(pids["worker"])
    os.kill(middle, signal.SIGKILL)  # the worker's parent
    deadline = time.time() + 10
    while _alive(worker) and time.time() < deadline:
        time.sleep(0.1)
    gone = not _alive(worker)
    if not gone:
        os.kill(worker, signal.SIGKILL)
    top.kill()
    top.wait()
    assert gone
