"""Case ids become file names: the one rule they follow, and output paths that stay inside.

A case id is a plain file-name token: not empty, at most :data:`MAX_CASE_ID_BYTES` bytes of
UTF-8, no path separator (``/`` or ``\\``), no ``..``, no control or invisible formatting
character, and not starting with ``.`` (hidden files, and autoseg's ``.tmp-`` temporaries).
Every dataset reader and ``autoseg predict``'s input reader apply it; every writer that
names a file after a case joins it with :func:`inside`, which refuses anything else.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

from autoseg.errors import DatasetError

__all__ = ["MAX_CASE_ID_BYTES", "case_id_problem", "inside"]

MAX_CASE_ID_BYTES = 200
"""Longest case id (UTF-8 bytes): room for the suffixes autoseg adds in a 255-byte name."""
_BAD_CATEGORIES = ("Cc", "Cf", "Cs", "Zl", "Zp")  # control, format, surrogate, line breaks


def case_id_problem(case_id: object) -> str | None:
    """Why ``case_id`` cannot name files, or None when it can (see the module docstring)."""
    if not isinstance(case_id, str) or not case_id:
        return "case id is empty"
    shown = ascii(case_id)
    if any(sep in case_id for sep in ("/", "\\")):
        return f"case id {shown} holds a path separator; case ids must be plain file names"
    if ".." in case_id:
        return f"case id {shown} holds '..'; case ids must be plain file names"
    if case_id.startswith("."):
        return f"case id {shown} starts with '.'; case ids must not name hidden files"
    if any(unicodedata.category(c) in _BAD_CATEGORIES for c in case_id):
        return f"case id {shown} holds a control character; case ids must be plain file names"
    if case_id != case_id.strip():
        return f"case id {shown} starts or ends with white space"
    if len(case_id.encode("utf-8", "surrogatepass")) > MAX_CASE_ID_BYTES:
        return f"case id {shown:.60}... is longer than {MAX_CASE_ID_BYTES} bytes"
    return None


def inside(root: Path | str, case_id: str, suffix: str = "") -> Path:
    """``root / (case_id + suffix)``, refused unless it lies directly inside ``root``.

    Raises:
        DatasetError: if ``case_id`` breaks the case-id rule (and would, say, write
            ``../../x.npy`` outside ``root``).
    """
    problem = case_id_problem(case_id)
    name = f"{case_id}{suffix}"
    if problem is None and (Path(name).name != name or "/" in suffix or "\\" in suffix):
        problem = f"file name {name!r} is not a plain file name"
    if problem is not None:
        raise DatasetError(f"{problem}; refusing to write outside {root}", case_id=None)
    return Path(root) / name
