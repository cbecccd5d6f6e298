"""Verification results kept per case, so re-planning an unchanged dataset reads no image.

``autoseg plan`` verifies every case before it fingerprints anything. Reading every image
again on each re-plan is what made re-planning slow; instead the result of each case's checks
is kept in the workspace's ``verify.json`` under a signature of its files: path, size,
modification time and a SHA-256 of the file's first :data:`HEADER_BYTES` bytes (the image
header and the start of its data). A case whose files all still match is not read again; a
case with any changed, added, removed, truncated or rewritten file is read and checked
again. The checks' own source code and their version number are part of the key too
(:func:`checks_digest`), so a newer autoseg with other checks re-verifies everything once.

What the signature does not see: a file changed in place beyond its first
:data:`HEADER_BYTES` bytes while keeping its size and modification time (which takes
deliberate effort, e.g. ``touch -r``); ``autoseg verify`` never uses the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoseg.atomic import atomic_write_json
from autoseg.data import case_io, checks, geometry, header_checks, imageio
from autoseg.data.checks import Problem
from autoseg.data.dataset import Case

__all__ = [
    "CACHE_SCHEMA_VERSION",
    "HEADER_BYTES",
    "CaseRecord",
    "case_signature",
    "checks_digest",
    "load_verify_cache",
    "reusable",
    "save_verify_cache",
]

CACHE_SCHEMA_VERSION = 2
"""2: records hold warnings, and problems their severity."""
HEADER_BYTES = 1 << 16
"""Bytes of each file hashed into its signature (64 KiB)."""


@dataclass(frozen=True)
class CaseRecord:
    """What verifying one case found: its problems, and its grid when it read cleanly."""

    case_id: str
    problems: tuple[Problem, ...]
    shape: tuple[int, int, int] | None = None
    spacing: tuple[float, float, float] | None = None
    label_values: tuple[int, ...] = ()
    warnings: tuple[Problem, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (problems and warnings with their severity)."""
        return {
            "case_id": self.case_id,
            "problems": [p.to_dict() for p in self.problems],
            "shape": list(self.shape) if self.shape is not None else None,
            "spacing": list(self.spacing) if self.spacing is not None else None,
            "label_values": list(self.label_values),
            "warnings": [p.to_dict() for p in self.warnings],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CaseRecord:
        """Inverse of :meth:`to_dict`."""
        shape, spacing = data["shape"], data["spacing"]
        return cls(
            str(data["case_id"]),
            tuple(Problem.from_dict(p) for p in data["problems"]),
            tuple(int(v) for v in shape) if shape is not None else None,  # type: ignore[arg-type]
            tuple(float(v) for v in spacing) if spacing is not None else None,  # type: ignore[arg-type]
            tuple(int(v) for v in data["label_values"]),
            tuple(Problem.from_dict(p) for p in data["warnings"]),
        )


def _file_signature(path: Path) -> str:
    try:
        stat = os.stat(path)
        with open(path, "rb") as handle:
            head = hashlib.sha256(handle.read(HEADER_BYTES)).hexdigest()
    except OSError as err:  # missing, a folder, unreadable: part of the signature
        return f"{Path(path).resolve()}|{type(err).__name__}"
    return f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{head}"


def case_signature(case: Case, expectations: str) -> str:
    """SHA-256 over the case's files (path, size, mtime, header digest), its id and what
    it is checked against (``expectations``: channel count and declared labels)."""
    parts = [case.case_id, expectations, *(_file_signature(p) for p in case.files)]
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()


def checks_digest() -> str:
    """SHA-256 of :data:`~autoseg.data.checks.CHECKS_VERSION` and of the source of the
    modules that implement the per-case checks: reading (gzip integrity included), headers
    and geometry, voxel types, values."""
    digest = hashlib.sha256(f"checks version {checks.CHECKS_VERSION}\n".encode())
    for module in (checks, header_checks, case_io, imageio, geometry):
        digest.update(Path(str(module.__file__)).read_bytes())
    return digest.hexdigest()


Cache = dict[str, tuple[str, CaseRecord]]
"""Case id -> (signature of its files, what verifying it found)."""


def load_verify_cache(path: Path) -> Cache:
    """The cached cases in ``path`` (empty when absent, damaged or made by other checks)."""
    try:
        data = json.loads(Path(path).read_text())
        if data.get("schema_version") != CACHE_SCHEMA_VERSION:
            return {}
        if data.get("checks") != checks_digest():
            return {}
        return {
            str(k): (str(v["signature"]), CaseRecord.from_dict(v["record"]))
            for k, v in data["cases"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def save_verify_cache(path: Path, cases: Cache, ok: bool) -> None:
    """Write the cache (atomically); ``ok``: the whole dataset passed."""
    atomic_write_json(
        path,
        {
            "schema_version": CACHE_SCHEMA_VERSION,
            "ok": bool(ok),
            "checks": checks_digest(),
            "cases": {
                case_id: {"signature": signature, "record": record.to_dict()}
                for case_id, (signature, record) in sorted(cases.items())
            },
        },
    )


def reusable(
    cases: Sequence[Case], cache: Cache, expectations: str
) -> tuple[dict[str, CaseRecord], list[Case], dict[str, str]]:
    """Split ``cases`` into those whose cached result still holds and those to check.

    Returns:
        ``(reused, to_check, signatures)``: cached records by case id, the cases to read
        again, and every case's current signature.
    """
    reused: dict[str, CaseRecord] = {}
    to_check: list[Case] = []
    signatures = {}
    for case in cases:
        signature = case_signature(case, expectations)
        signatures[case.case_id] = signature
        entry = cache.get(case.case_id)
        if entry is not None and entry[0] == signature:
            reused[case.case_id] = entry[1]
        else:
            to_check.append(case)
    return reused, to_check, signatures
