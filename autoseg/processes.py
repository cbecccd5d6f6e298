"""Which process wrote a file, and whether it still runs: for locks and leftover temporaries.

A process is named by its host, its PID and (on Linux) its start time in clock ticks since
boot, read from ``/proc/<pid>/stat``; the start time tells a PID reused by a later process
from the one that wrote the record. Only processes on this host can be asked about.
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProcessId", "host_name", "host_tag", "is_running", "start_ticks"]


def host_name() -> str:
    """This machine's host name (as ``socket.gethostname`` gives it)."""
    return socket.gethostname() or "localhost"


def host_tag() -> str:
    """Six hex digits naming this host in file names (a digest: host names may be long)."""
    return hashlib.sha256(host_name().encode("utf-8")).hexdigest()[:6]


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (None off Linux or when gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks after boot (Linux), else None."""
    fields = _stat_fields(pid)
    try:
        return int(fields[19]) if fields else None  # field 22 of stat(5); 3 is fields[0]
    except (IndexError, ValueError):
        return None


def is_running(pid: int, ticks: int | None = None) -> bool:
    """True when ``pid`` runs on this host (zombies count as gone); with ``ticks``, only when
    it is the process that started at that time (not a later one given the same PID)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    fields = _stat_fields(pid)
    if fields is None:
        return not Path("/proc/self/stat").exists()  # no /proc: trust kill(0)
    if fields[0] in ("Z", "X"):
        return False
    return ticks is None or start_ticks(pid) in (None, ticks)


@dataclass(frozen=True)
class ProcessId:
    """A process: host, PID and start ticks (None where the system does not tell)."""

    host: str
    pid: int
    ticks: int | None = None

    @classmethod
    def current(cls) -> ProcessId:
        pid = os.getpid()
        return cls(host_name(), pid, start_ticks(pid))

    @property
    def on_this_host(self) -> bool:
        return self.host == host_name()

    def is_running(self) -> bool:
        """True when it still runs; a process on another host counts as running (unknown)."""
        return not self.on_this_host or is_running(self.pid, self.ticks)
