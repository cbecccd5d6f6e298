"""Lock files: one process at a time changes a folder (one trainer per fold).

A lock is a small JSON file created atomically (``O_CREAT | O_EXCL``) holding its holder:
PID, host, start time and command. While held, a background thread touches it every
:data:`HEARTBEAT_SECONDS`. Another process that finds it:

- on the same host, takes it over (with a warning) when the holder is gone: its PID no
  longer runs, or now names another process (its start time differs); a live holder is
  always honoured;
- on another host (a shared file system), honours it while it is touched, and takes it
  over once it has not been touched for :data:`STALE_SECONDS` (the holder's machine
  stopped), or at once with ``break_lock`` (``autoseg train --break-lock``) when the user
  knows that run is gone;
- takes over a lock file it cannot parse once it is older than a few seconds (a write that
  was cut short).

A stale lock is removed under a short guard (an advisory ``flock`` of ``<lock>.guard``, which
the kernel releases when its holder dies) after checking, under that guard, that the lock file
still names the holder judged stale; the new lock is then created with ``O_EXCL`` as usual.
So of several processes taking over one stale lock exactly one gets it, and none removes a
lock another has just made. (Renaming the lock aside instead left a moment with no lock file,
in which a third process could create one that was then removed.)
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: the guard is a no-op there
    fcntl = None  # type: ignore[assignment]

from autoseg.atomic import STORAGE_ERRNOS, make_folder, storage_error
from autoseg.errors import LockError
from autoseg.log import get_logger
from autoseg.processes import ProcessId, host_name

__all__ = ["HEARTBEAT_SECONDS", "STALE_SECONDS", "FileLock", "LockHolder", "read_holder"]

_log = get_logger(__name__)

HEARTBEAT_SECONDS = 60.0
"""How often a held lock file is touched."""
STALE_SECONDS = 3600.0
"""A lock of another host that has not been touched for this long is taken over."""
_WRITING_SECONDS = 10.0  # an unparsable lock younger than this is still being written


@dataclass(frozen=True)
class LockHolder:
    """Who holds a lock (the lock file's content)."""

    pid: int
    host: str
    started: str
    ticks: int | None = None
    command: str = ""

    @classmethod
    def current(cls) -> LockHolder:
        me = ProcessId.current()
        now = datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")
        return cls(me.pid, me.host, now, me.ticks, " ".join(sys.argv)[:500])

    def to_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "host": self.host,
            "started": self.started,
            "ticks": self.ticks,
            "command": self.command,
        }

    def describe(self) -> str:
        return f"PID {self.pid} on host {self.host} since {self.started}"

    def is_running(self) -> bool:
        """False when it certainly stopped (same host only; another host's is unknown)."""
        return ProcessId(self.host, self.pid, self.ticks).is_running()


def read_holder(path: Path) -> LockHolder | None:
    """The holder recorded in a lock file; None when it is missing or unparsable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        ticks = data.get("ticks")
        return LockHolder(
            int(data["pid"]),
            str(data["host"]),
            str(data["started"]),
            None if ticks is None else int(ticks),
            str(data.get("command", "")),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None


@contextmanager
def _guard(path: Path) -> Iterator[None]:
    """An exclusive advisory lock of ``path`` for the block (released if the process dies)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


class FileLock:
    """Hold the lock file ``path`` for a ``with`` block (see the module docstring).

    Args:
        path: The lock file (its folder is created).
        what: What the lock guards, for messages ("results/unet3d/fold_0").
        break_lock: Take over a live-looking lock of another host.

    Raises:
        LockError: on entering, when another process holds it, naming the holder.
    """

    def __init__(self, path: Path | str, *, what: str, break_lock: bool = False) -> None:
        self.path = Path(path)
        self.what = what
        self.break_lock = break_lock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def acquire(self) -> None:
        make_folder(self.path.parent)
        for _ in range(200):  # 0.1 s waits while a lock is being written: up to 20 s
            if self._create():
                self._thread = threading.Thread(target=self._beat, daemon=True)
                self._thread.start()
                return
            holder = read_holder(self.path)
            if holder is None and _age(self.path) < _WRITING_SECONDS:
                time.sleep(0.1)  # being written by its creator this very moment
                continue
            reason = self._stale_reason(holder)
            if reason is None:
                raise self._held_error(holder)
            self._take_over(holder, reason)
        raise LockError(f"cannot take the lock of {self.what}", path=self.path)

    def release(self) -> None:
        """Stop the heartbeat and remove the lock file if it is still this process's."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
            holder = read_holder(self.path)
            if holder is not None and (holder.pid, holder.host) == (os.getpid(), host_name()):
                with suppress(OSError):
                    self.path.unlink()

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            return False
        except OSError as err:
            if err.errno not in STORAGE_ERRNOS:
                raise
            raise storage_error(err, self.path, what="cannot create the lock file") from None
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(LockHolder.current().to_dict(), handle)
            handle.flush()
            os.fsync(handle.fileno())
        return True

    def _stale_reason(self, holder: LockHolder | None) -> str | None:
        """Why the lock may be taken over, or None when it must be honoured."""
        if holder is None:
            return "its lock file is unreadable"
        if holder.host == host_name():
            return None if holder.is_running() else f"PID {holder.pid} is gone"
        age = _age(self.path)
        if age > STALE_SECONDS:
            return f"host {holder.host} has not touched it for {age / 60:.0f} minutes"
        return "--break-lock was given" if self.break_lock else None

    def _held_error(self, holder: LockHolder | None) -> LockError:
        assert holder is not None
        hint = "wait for it to finish, or stop it"
        if holder.host != host_name():
            hint += " (if that run is gone, pass --break-lock)"
        return LockError(
            f"{self.what} is in use by {holder.describe()} ({holder.command or 'autoseg'}); {hint}",
            path=self.path,
        )

    def _take_over(self, holder: LockHolder | None, reason: str) -> None:
        with _guard(self.path.with_name(f"{self.path.name}.guard")):
            if read_holder(self.path) != holder:
                return  # taken over (or released) meanwhile: judge the lock again
            try:
                self.path.unlink()
            except FileNotFoundError:
                return
        who = holder.describe() if holder is not None else "an unknown process"
        _log.warning("taking over the lock of %s held by %s: %s", self.what, who, reason)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                os.utime(self.path)
            except OSError:
                _log.warning("the lock file %s is gone; another process may take it", self.path)
                return
