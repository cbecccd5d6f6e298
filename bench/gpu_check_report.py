"""The record of a ``bench/gpu_check.py`` run: ``OUT/gpu_check.json`` (rewritten atomically
after every section and measurement, so a killed run leaves what it measured) and the printed
tables (also written to ``OUT/gpu_check.md``).

Standard library only: the report must survive a broken torch or autoseg installation.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

SCHEMA = "autoseg-gpu-check/1"
SECTIONS = ("environment", "planning", "memory", "speed", "demo", "ddp")
"""Every section, in the order of the issue (and of the tables)."""
STATUSES = ("ok", "partial", "skipped", "error", "not-run", "running", "aborted")
"""A section's status: ``partial`` = some measurements failed or were skipped for time."""


def _plain(value: Any) -> Any:
    """``json.dumps`` fallback: Paths and other objects as strings, NaN/inf never reach it."""
    return str(value)


def _finite(value: Any) -> Any:
    """Replace NaN and infinities (not JSON) by None, recursively."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and ``os.replace``."""
    text = json.dumps(_finite(data), indent=2, default=_plain) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Report:
    """The run's JSON record and its writer.

    Args:
        out: Output folder (created).
        meta: Top-level fields (command, deadline, ...).
    """

    def __init__(self, out: Path, meta: dict[str, Any]) -> None:
        self.out = out
        self.out.mkdir(parents=True, exist_ok=True)
        self.path = out / "gpu_check.json"
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self.data: dict[str, Any] = {
            "schema": SCHEMA,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "finished": None,
            "status": "running",
            **meta,
            "sections": {name: {"status": "not-run"} for name in SECTIONS},
        }

    def section(self, name: str) -> dict[str, Any]:
        """The JSON record of section ``name``."""
        return self.data["sections"][name]  # type: ignore[no-any-return]

    def begin(self, name: str, box_seconds: float) -> dict[str, Any]:
        """Mark ``name`` as running with an empty ``data`` record; returns the record."""
        record = {"status": "running", "time_box_seconds": round(box_seconds, 1), "data": {}}
        self.data["sections"][name] = record
        self.data["current_section"] = name
        self.write()
        return record

    def end(self, name: str, status: str, seconds: float, **fields: Any) -> None:
        """Close section ``name`` with its status, duration and extra fields."""
        record = self.section(name)
        record.update(status=status, seconds=round(seconds, 2), **fields)
        self.data["current_section"] = None
        self.write()

    def skip(self, name: str, reason: str, data: dict[str, Any] | None = None) -> None:
        """Record section ``name`` as skipped, saying why."""
        self.data["sections"][name] = {
            "status": "skipped",
            "skipped_reason": reason,
            "seconds": 0.0,
            "data": data or {},
        }
        self.write()

    def finish(self, status: str) -> None:
        """Stamp the end of the run."""
        self.data["status"] = status
        self.data["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.data["elapsed_seconds"] = round(time.monotonic() - self._start, 1)
        self.write()

    def snapshot(self) -> dict[str, Any]:
        """A deep copy of the record (retried: another thread may be changing it)."""
        for _ in range(5):
            try:
                return copy.deepcopy(self.data)
            except RuntimeError:  # changed size during iteration
                time.sleep(0.01)
        return {"schema": SCHEMA, "status": "unreadable"}

    def write(self) -> None:
        """Rewrite ``gpu_check.json`` atomically (safe from the watchdog thread too)."""
        with self._lock:
            write_json_atomic(self.path, self.snapshot())

    def write_text(self, name: str, text: str) -> Path:
        """Write ``OUT/name`` (the printed tables)."""
        path = self.out / name
        path.write_text(text, encoding="utf-8")
        return path
