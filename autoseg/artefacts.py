"""Input digests and "is this artefact current?" checks, shared by every step.

Every JSON artefact carries ``inputs``: digests of what it was computed from. A step skips
its work when its output exists, parses, and records the same ``inputs``. Image files are
digested by name, size and modification time (reading every byte of a large dataset on
each re-run would cost more than the check saves); JSON artefacts by their content.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from autoseg.strict import load_json

__all__ = [
    "SAMPLE_BYTES",
    "content_digest",
    "file_record",
    "files_digest",
    "is_current",
    "read_json",
    "record_mismatch",
    "sampled_digest",
    "text_digest",
]

SAMPLE_BYTES = 1 << 20
""":func:`sampled_digest` hashes files up to 4x this size whole, larger ones at both ends."""


def text_digest(text: str) -> str:
    """SHA-256 of a string."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def content_digest(path: Path | str) -> str:
    """SHA-256 of a (small) file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def sampled_digest(path: Path | str) -> str:
    """SHA-256 of a file: of every byte up to ``4 * SAMPLE_BYTES``, else of its size, its first
    and its last ``SAMPLE_BYTES`` (truncation, a damaged header or a zeroed tail all show;
    reading a few MiB per file keeps the check cheap for datasets of hundreds of GB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size <= 4 * SAMPLE_BYTES:
            digest.update(handle.read())
        else:
            digest.update(f"{size}|".encode())
            digest.update(handle.read(SAMPLE_BYTES))
            handle.seek(size - SAMPLE_BYTES)
            digest.update(handle.read(SAMPLE_BYTES))
    return digest.hexdigest()


def file_record(path: Path | str) -> dict[str, Any]:
    """``{"size": bytes, "sha256": sampled_digest}`` of a file just written."""
    return {"size": Path(path).stat().st_size, "sha256": sampled_digest(path)}


def record_mismatch(path: Path | str, record: Any, *, deep: bool = True) -> str | None:
    """What differs between a file and its :func:`file_record` (None when it matches).

    With ``deep`` False only the size is compared (one ``stat``).
    """
    path = Path(path)
    if not isinstance(record, Mapping) or "size" not in record or "sha256" not in record:
        return "no size/digest was recorded for it"
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "file is missing"
    except OSError as err:
        return f"cannot read it ({err.strerror})"
    if size != record["size"]:
        return f"size is {size} bytes, {record['size']} were written"
    if deep:
        try:
            if sampled_digest(path) != record["sha256"]:
                return "content differs from what was written (SHA-256)"
        except OSError as err:
            return f"cannot read it ({err.strerror})"
    return None


def files_digest(paths: Iterable[Path | str]) -> str:
    """SHA-256 over the absolute path, size and mtime of each file (missing files count too)."""
    digest = hashlib.sha256()
    for path in paths:
        path = Path(path).resolve()
        try:
            stat = path.stat()
            digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        except FileNotFoundError:
            digest.update(f"{path}|missing\n".encode())
    return digest.hexdigest()


def read_json(path: Path | str) -> Any | None:
    """The parsed JSON in ``path``, or None if it is missing or not valid JSON."""
    try:
        return load_json(Path(path).read_text())
    except (OSError, ValueError):
        return None


def is_current(path: Path | str, inputs: Mapping[str, str]) -> bool:
    """True when ``path`` holds a JSON object whose ``inputs`` equal ``inputs``."""
    data = read_json(path)
    return isinstance(data, dict) and data.get("inputs") == dict(inputs)
