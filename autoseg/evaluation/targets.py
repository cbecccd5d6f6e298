"""What to score: label values and regions from a dataset.json or a JSON region spec.

Regions follow the nnU-Net v2 region style: in dataset.json ``labels``, an entry whose value
is a list unites those label values (``{"whole tumour": [1, 2, 3]}``); integer entries are
plain labels. A top-level ``regions`` mapping of the same form is read too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from autoseg.data.labels import is_label_value, label_entries, region_entries
from autoseg.errors import InputError

__all__ = ["load_regions", "parse_regions", "read_dataset_json"]


def parse_regions(obj: Any, *, source: Path | None = None) -> dict[str, tuple[int, ...]]:
    """Validate a region mapping ``{name: [label, ...]}`` (a single int is a one-label region).

    A dataset.json-like object (with a ``labels`` key) gives its list-valued labels and its
    ``regions`` entry.

    Raises:
        InputError: if it is not such a mapping, naming ``source``.
    """
    if isinstance(obj, Mapping) and "labels" in obj:
        labels = obj["labels"]
        if not isinstance(labels, Mapping):
            raise InputError(
                f"'labels' must be a mapping, got {type(labels).__name__}", path=source
            )
        return {
            **parse_regions(region_entries(labels), source=source),
            **parse_regions(obj.get("regions", {}), source=source),
        }
    if not isinstance(obj, Mapping):
        raise InputError(
            f"regions must be a JSON object {{name: [label, ...]}}, got {type(obj).__name__}",
            path=source,
        )
    regions_out: dict[str, tuple[int, ...]] = {}
    for name, values in obj.items():
        members = [values] if is_label_value(values) else values
        if (
            not isinstance(members, (list, tuple))
            or not members
            or not all(map(is_label_value, members))
        ):
            raise InputError(
                f"region {name!r} must list one or more integer labels, got {values!r}",
                path=source,
            )
        regions_out[str(name)] = tuple(int(v) for v in members)
    return regions_out


def _read_json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read file: {err}", path=path) from None
    except json.JSONDecodeError as err:
        raise InputError(f"invalid JSON: {err}", path=path) from None


def load_regions(spec: str | Path) -> dict[str, tuple[int, ...]]:
    """Regions from a JSON file (region mapping or dataset.json) or an inline JSON string.

    Example:
        ``load_regions('{"whole tumour": [1, 2, 3], "core": [2, 3]}')``

    Raises:
        InputError: if ``spec`` is neither an existing file nor valid JSON, or is malformed.
    """
    path = Path(spec)
    if path.is_file():
        return parse_regions(_read_json_file(path), source=path)
    try:
        obj = json.loads(str(spec))
    except json.JSONDecodeError:
        raise InputError(
            f"--regions {str(spec)!r} is neither an existing file nor a JSON object "
            "(e.g. '{\"whole tumour\": [1, 2, 3]}')"
        ) from None
    return parse_regions(obj)


def read_dataset_json(path: Path) -> tuple[list[int], dict[str, tuple[int, ...]]]:
    """Foreground label values (integer ``labels`` entries other than 0) and regions.

    Returns:
        ``(labels, regions)``; ``labels`` is sorted and may be empty (region-only datasets).

    Raises:
        InputError: if the file is missing, not JSON, or its ``labels`` are malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("dataset.json not found", path=path)
    obj = _read_json_file(path)
    if not isinstance(obj, Mapping) or not isinstance(obj.get("labels"), Mapping):
        raise InputError("expected a JSON object with a 'labels' mapping", path=path)
    labels = obj["labels"]
    bad = {k: v for k, v in labels.items() if not (is_label_value(v) or isinstance(v, list))}
    if bad:
        raise InputError(f"labels must be integers or lists of integers, got {bad}", path=path)
    values = sorted({v for v in label_entries(labels).values() if v != 0})
    return values, parse_regions(obj, source=path)
