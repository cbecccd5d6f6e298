"""Remove what killed autoseg processes left behind: temporary files and folders.

Every temporary carries its writer's host and PID in its name (see :mod:`autoseg.atomic`),
so a run can remove the leftovers of processes that are gone without touching the files of
one still writing: ``plan`` cleans the workspace and ``preprocessed/``, ``train`` its fold
folder, ``predict`` its output folder, and opening a model archive the temporary folder.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from autoseg.atomic import TEMP_PREFIX, temp_owner
from autoseg.log import get_logger
from autoseg.processes import host_tag, is_running

__all__ = ["LEFTOVER_AGE_SECONDS", "clean_temporaries", "is_leftover"]

_log = get_logger(__name__)

LEFTOVER_AGE_SECONDS = 3600.0
"""A temporary whose writer cannot be asked (another host, or an older autoseg that did not
name it) counts as left over once it is this old."""


def is_leftover(entry: Path, name: str | None = None, *, now: float | None = None) -> bool:
    """True when the temporary ``entry`` belongs to no running process.

    ``name`` is the part of the file name that holds the owner (default: the whole name).
    """
    owner = temp_owner(name if name is not None else entry.name)
    if owner is not None and owner[0] == host_tag():
        return not is_running(owner[1])
    try:
        age = (time.time() if now is None else now) - entry.lstat().st_mtime
    except OSError:
        return False
    return age > LEFTOVER_AGE_SECONDS


def _remove(entry: Path) -> bool:
    try:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    except OSError as err:
        _log.debug("cannot remove leftover %s: %s", entry, err)
        return False
    return True


def clean_temporaries(folder: Path | str, *, prefix: str = TEMP_PREFIX) -> list[Path]:
    """Remove the temporaries (names starting with ``prefix``) that killed processes left
    in ``folder``; files of running processes are never touched.

    Returns:
        What was removed.
    """
    folder = Path(folder)
    try:
        entries = sorted(p for p in folder.iterdir() if p.name.startswith(prefix))
    except OSError:
        return []
    now = time.time()
    owner_part = (lambda n: TEMP_PREFIX + n[len(prefix) :]) if prefix != TEMP_PREFIX else None
    removed = [
        entry
        for entry in entries
        if is_leftover(entry, owner_part(entry.name) if owner_part else None, now=now)
        and _remove(entry)
    ]
    if removed:
        _log.info(
            "removed %d leftover temporary file(s) of a killed run in %s", len(removed), folder
        )
    return removed
