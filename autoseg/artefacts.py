"""Input digests and "is this artefact current?" checks, shared by every step.

Every JSON artefact carries ``inputs``: digests of what it was computed from. A step skips
its work when its output exists, parses, and records the same ``inputs``. Image files are
digested by name, size and modification time (reading every byte of a large dataset on
each re-run would cost more than the check saves); JSON artefacts by their content.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["content_digest", "files_digest", "is_current", "read_json", "text_digest"]


def text_digest(text: str) -> str:
    """SHA-256 of a string."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def content_digest(path: Path | str) -> str:
    """SHA-256 of a (small) file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


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
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def is_current(path: Path | str, inputs: Mapping[str, str]) -> bool:
    """True when ``path`` holds a JSON object whose ``inputs`` equal ``inputs``."""
    data = read_json(path)
    return isinstance(data, dict) and data.get("inputs") == dict(inputs)
