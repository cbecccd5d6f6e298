"""Shared pieces of ``bench/gpu_check.py``: paths, time boxes, the context the sections share,
and subprocesses that are killed with everything they started when their time is up.

Only the standard library is imported here, so the report can still be written when torch or
one of autoseg's dependencies is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
JOBS_SCRIPT = Path(__file__).resolve().parent / "gpu_check_jobs.py"
JSON_MARK = "GPU_CHECK_JSON "
"""Prefix of the one stdout line in which a job subprocess returns its result."""
TAIL_CHARS = 3000
DEVICE = "cuda"
"""The device the GPU sections measure. A development harness may set "cpu" (with
``torch.cuda`` stubbed) to walk through their code without a GPU."""

_ACTIVE: set[subprocess.Popen[str]] = set()
_ACTIVE_LOCK = threading.Lock()


def use_this_checkout() -> None:
    """Import autoseg from this repository, before any installed copy (e.g. an editable
    install of another worktree)."""
    if sys.path[:1] != [str(REPO)]:
        sys.path.insert(0, str(REPO))


def device() -> str:
    """:data:`DEVICE`, read when called."""
    return DEVICE


def child_env(**extra: str) -> dict[str, str]:
    """Environment of a child process: this checkout first on PYTHONPATH, unbuffered output."""
    env = dict(os.environ)
    paths = [str(REPO), *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class SectionSkipped(Exception):
    """Raised by a section that cannot run here; the message says why."""


@dataclass(frozen=True)
class Box:
    """A time box: an absolute ``time.monotonic()`` end."""

    end: float

    def left(self) -> float:
        """Seconds until the end (negative when past it)."""
        return self.end - time.monotonic()

    def has(self, seconds: float) -> bool:
        """Whether at least ``seconds`` are left."""
        return self.left() >= seconds

    def within(self, seconds: float) -> Box:
        """A box ending ``seconds`` from now, or at this box's end if that is sooner."""
        return Box(min(self.end, time.monotonic() + seconds))


@dataclass(frozen=True)
class DatasetInput:
    """A dataset the check plans (and, on a GPU, trains and predicts on).

    Attributes:
        name: "hippocampus" or "phantom".
        path: The dataset folder (MSD or nnU-Net v2 raw).
        description: One line for the report.
    """

    name: str
    path: Path
    description: str


@dataclass
class Context:
    """What the sections share: options, folders, the datasets and the plans made.

    Attributes:
        options: The parsed command-line options.
        out: Folder of gpu_check.json and gpu_check.md.
        scratch: Folder of every other file (datasets, workspaces); removed at the end
            unless ``--keep-scratch``.
        cuda: Whether a CUDA device is usable by torch.
        inputs: The datasets found or generated (filled by the planning step).
        planned: One entry per planned configuration: ``(row, plans, config_name)``; the row
            is the JSON record, the plans object is kept for the measurements.
        notes: Dataset notes (e.g. Hippocampus not found).
    """

    options: Any
    out: Path
    scratch: Path
    cuda: bool
    inputs: list[DatasetInput] = field(default_factory=list)
    planned: list[tuple[dict[str, Any], Any, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ProcessResult:
    """What a finished (or killed) subprocess left."""

    returncode: int | None
    seconds: float
    timed_out: bool
    stdout_tail: str
    stderr_tail: str
    result: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the tails are kept short)."""
        return {
            "returncode": self.returncode,
            "seconds": round(self.seconds, 2),
            "timed_out": self.timed_out,
            "stdout_tail": self.stdout_tail,
            "stderr_tail": self.stderr_tail,
        }


def _group_kwargs() -> dict[str, Any]:
    """Start the child in its own process group (same session), so the whole group can be
    signalled and the device tool still ends it with the command."""
    if sys.version_info >= (3, 11):
        return {"process_group": 0}
    return {"start_new_session": True}  # pragma: no cover - Python 3.10


def _signal_group(proc: subprocess.Popen[str], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def stop_process(proc: subprocess.Popen[str], grace: float = 10.0) -> None:
    """SIGTERM the child's process group (torchrun then stops its workers), SIGKILL after
    ``grace`` seconds."""
    _signal_group(proc, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    _signal_group(proc, signal.SIGKILL)


def stop_all_processes() -> None:
    """Stop every subprocess still running (the watchdog's last act)."""
    with _ACTIVE_LOCK:
        running = list(_ACTIVE)
    for proc in running:
        stop_process(proc, grace=3.0)


def _last_json(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(JSON_MARK):
            try:
                value = json.loads(line[len(JSON_MARK) :])
            except json.JSONDecodeError:
                return None
            return value if isinstance(value, dict) else None
    return None


def run_process(
    command: list[str], timeout: float, *, cwd: Path = REPO, env: dict[str, str] | None = None
) -> ProcessResult:
    """Run ``command`` for at most ``timeout`` seconds; never raises for its failure.

    Returns:
        The exit status (None if it had to be killed), wall seconds, the output tails and the
        JSON result line (:data:`JSON_MARK`) if it printed one.
    """
    start = time.monotonic()
    proc = subprocess.Popen(
        command,
        cwd=cwd,
        env=env if env is not None else child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **_group_kwargs(),
    )
    with _ACTIVE_LOCK:
        _ACTIVE.add(proc)
    timed_out = False
    try:
        stdout, stderr = proc.communicate(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        timed_out = True
        stop_process(proc)
        stdout, stderr = proc.communicate()
    finally:
        with _ACTIVE_LOCK:
            _ACTIVE.discard(proc)
    return ProcessResult(
        None if timed_out else proc.returncode,
        time.monotonic() - start,
        timed_out,
        stdout[-TAIL_CHARS:],
        stderr[-TAIL_CHARS:],
        _last_json(stdout),
    )


def error_text(err: BaseException) -> str:
    """One line naming the exception type and its message."""
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}"[:500]
