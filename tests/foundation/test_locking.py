"""Lock files: one holder at a time, stale locks taken over, other hosts honoured."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import subprocess
import time
from pathlib import Path

import pytest

from autoseg.errors import LockError
from autoseg.locking import STALE_SECONDS, FileLock, read_holder
from autoseg.processes import ProcessId, host_name


def _write(path: Path, **fields: object) -> None:
    me = ProcessId.current()
    data = {"pid": me.pid, "host": me.host, "started": "2024-01-01T00:00:00+00:00"}
    data.update(fields)  # type: ignore[arg-type]
    path.write_text(json.dumps(data))


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_held_lock_refuses_a_second_holder_and_names_the_first(tmp_path: Path) -> None:
    path = tmp_path / "fold_0" / "train.lock"
    with FileLock(path, what="unet3d/fold_0"):
        holder = read_holder(path)
        assert holder is not None and holder.pid == os.getpid() and holder.host == host_name()
        with pytest.raises(LockError) as raised:
            FileLock(path, what="unet3d/fold_0").acquire()
        message = str(raised.value)
        assert f"unet3d/fold_0 is in use by PID {os.getpid()} on host {host_name()} since " in (
            message
        )
        assert "--break-lock" not in message  # a live run on this host is never taken over
    assert not path.exists()


def test_lock_of_a_dead_process_is_taken_over_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "train.lock"
    dead = _dead_pid()
    _write(path, pid=dead)
    with caplog.at_level(logging.WARNING, logger="autoseg"), FileLock(path, what="fold"):
        assert read_holder(path).pid == os.getpid()  # type: ignore[union-attr]
    assert f"taking over the lock of fold held by PID {dead}" in caplog.text
    assert f"PID {dead} is gone" in caplog.text


def test_a_reused_pid_does_not_keep_a_lock(tmp_path: Path) -> None:
    path = tmp_path / "train.lock"
    me = ProcessId.current()
    if me.ticks is None:
        pytest.skip("no process start times on this system (/proc)")
    _write(path, ticks=me.ticks + 1)  # our PID, but a process that started at another time
    with FileLock(path, what="fold"):
        assert read_holder(path).ticks == me.ticks  # type: ignore[union-attr]


def test_another_hosts_lock_is_honoured_until_stale_or_broken(tmp_path: Path) -> None:
    path = tmp_path / "train.lock"
    _write(path, pid=1, host="gpu-node-7")
    with pytest.raises(LockError, match=r"PID 1 on host gpu-node-7 .*pass --break-lock"):
        FileLock(path, what="fold").acquire()
    with FileLock(path, what="fold", break_lock=True):
        assert read_holder(path).host == host_name()  # type: ignore[union-attr]
    _write(path, pid=1, host="gpu-node-7")
    old = time.time() - STALE_SECONDS - 60
    os.utime(path, (old, old))
    with FileLock(path, what="fold"):
        assert read_holder(path).host == host_name()  # type: ignore[union-attr]


def test_an_unreadable_old_lock_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "train.lock"
    path.write_text("{")
    os.utime(path, (time.time() - 60, time.time() - 60))
    with FileLock(path, what="fold"):
        assert read_holder(path).pid == os.getpid()  # type: ignore[union-attr]


def _contend(path: str, start: float, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    while time.time() < start:
        time.sleep(0.001)
    try:
        with FileLock(Path(path), what="fold"):
            results.put("got")
            time.sleep(1.0)
    except LockError:
        results.put("refused")


def test_processes_racing_for_a_stale_lock_get_it_once(tmp_path: Path) -> None:
    path = tmp_path / "train.lock"
    _write(path, pid=_dead_pid())
    context = multiprocessing.get_context("fork")
    results: multiprocessing.Queue = context.Queue()  # type: ignore[type-arg]
    start = time.time() + 0.5
    workers = [context.Process(target=_contend, args=(str(path), start, results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    outcomes = sorted(results.get(timeout=5) for _ in workers)
    assert outcomes == ["got", "refused", "refused", "refused"]
