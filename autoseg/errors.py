"""Errors autoseg raises for bad input: one line naming the case, the file and what is wrong.

The CLI prints ``autoseg: error: <str(err)>`` and exits with status 2 for every
:class:`AutosegError`; anything else is a bug and exits 1 with a traceback.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "AutosegError",
    "CheckpointError",
    "ConfigError",
    "DatasetError",
    "InputError",
    "LockError",
    "PlansError",
    "StorageError",
    "one_line",
    "printable",
]


class AutosegError(Exception):
    """Base class of every user-facing error.

    Args:
        message: What is wrong, stating the rule and the offending value.
        case_id: The case the problem belongs to, if any.
        path: The file the problem was found in, if any.
    """

    def __init__(
        self, message: str, *, case_id: str | None = None, path: Path | str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.case_id = case_id
        self.path = Path(path) if path is not None else None

    def __reduce__(self) -> tuple[object, ...]:
        # Keep case and path when the error crosses a process boundary (worker pools).
        return (_rebuild, (type(self), self.message, self.case_id, self.path))

    def __str__(self) -> str:
        return one_line(self.case_id, self.path, self.message)


def printable(text: str) -> str:
    """``text`` with control characters escaped (``\\n``), so a message stays one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def one_line(case_id: str | None, path: Path | str | None, message: str) -> str:
    """``<case> <file>: <message>`` (parts that are None left out), on one line."""
    where = " ".join(printable(str(part)) for part in (case_id, path) if part)
    return f"{where}: {printable(message)}" if where else printable(message)


def _rebuild(
    cls: type[AutosegError], message: str, case_id: str | None, path: Path | None
) -> AutosegError:
    return cls(message, case_id=case_id, path=path)


class DatasetError(AutosegError):
    """A dataset folder, manifest or image is missing, malformed or inconsistent."""


class InputError(AutosegError):
    """An input given to ``predict`` or ``evaluate`` cannot be used."""


class PlansError(AutosegError):
    """plans.json (or another JSON artefact) is missing, malformed or of another version."""


class CheckpointError(AutosegError):
    """A checkpoint is missing, truncated, corrupted or does not match the plan."""


class ConfigError(AutosegError):
    """A command-line option or configuration value is invalid."""


class StorageError(AutosegError):
    """A file or folder cannot be written: a read-only or full disk, missing permissions, or
    a file where a folder should be (and the other way round)."""


class LockError(AutosegError):
    """Another process holds the lock of what this one wants to change (a fold folder)."""
