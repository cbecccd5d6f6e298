"""What to score: label values and regions from a dataset.json or a JSON region spec.

Regions follow the nnU-Net v2 region style: in dataset.json ``labels``, an entry whose value
is a list unites those label values (``{"whole tumour": [1, 2, 3]}``); integer entries are
plain labels. A top-level ``regions`` mapping of the same form is read too. With
``regions_class_order`` (region-based training) every entry is a region and only the
regions are scored, as nnU-Net evaluates them. An ``ignore`` label is never scored and its
voxels are left out of every mask (:mod:`autoseg.data.labels`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoseg.data.label_names import label_names
from autoseg.data.labels import (
    is_label_value,
    label_entries,
    parse_label_scheme,
    region_entries,
)
from autoseg.errors import InputError
from autoseg.strict import load_json


@dataclass(frozen=True)
class DatasetTargets:
    """What a dataset.json says to score.

    Attributes:
        labels: Foreground label values scored one by one (empty for region-based
            training, whose regions are scored instead).
        regions: Region name -> label values, in order.
        ignore_label: The ignore label (left out of every mask), or None.
        names: Display name of every target (``"1"`` -> ``"edema"``, region -> itself).
        region_based: ``regions_class_order`` asks for region-based training.
        regions_class_order: The label each region paints, for region-based training.
    """

    labels: list[int]
    regions: dict[str, tuple[int, ...]]
    ignore_label: int | None = None
    names: dict[str, str] = field(default_factory=dict)
    region_based: bool = False
    regions_class_order: tuple[int, ...] | None = None


__all__ = ["DatasetTargets", "load_regions", "parse_regions", "read_dataset_json"]


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
        return load_json(path.read_text(encoding="utf-8"))
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
        obj = load_json(str(spec))
    except json.JSONDecodeError:
        raise InputError(
            f"--regions {str(spec)!r} is neither an existing file nor a JSON object "
            "(e.g. '{\"whole tumour\": [1, 2, 3]}')"
        ) from None
    return parse_regions(obj)


def _name_to_value(labels: Mapping[Any, Any]) -> Mapping[Any, Any]:
    """nnU-Net v2's name -> value ``labels``; an MSD dataset.json's value -> name
    (``{"0": "background", "1": "Anterior"}``) turned round."""
    msd = bool(labels) and all(str(k).isdigit() and isinstance(v, str) for k, v in labels.items())
    return {name: int(value) for value, name in labels.items()} if msd else labels


def read_dataset_json(path: Path) -> tuple[list[int], dict[str, tuple[int, ...]]]:
    """Foreground label values and regions to score (see :func:`read_dataset_targets`).

    Returns:
        ``(labels, regions)``; ``labels`` is sorted and may be empty (region-only datasets,
        region-based training).

    Raises:
        InputError: if the file is missing, not JSON, or its ``labels`` are malformed.
    """
    targets = read_dataset_targets(path)
    return targets.labels, targets.regions


def read_dataset_targets(path: Path) -> DatasetTargets:
    """What a dataset.json says to score: labels, regions, the ignore label, names. Both
    nnU-Net v2's ``labels`` (name -> value) and the MSD's (value -> name) are read.

    Raises:
        InputError: if the file is missing, not JSON, or its ``labels`` (or
            ``regions_class_order``) are malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("dataset.json not found", path=path)
    obj = _read_json_file(path)
    if not isinstance(obj, Mapping) or not isinstance(obj.get("labels"), Mapping):
        raise InputError("expected a JSON object with a 'labels' mapping", path=path)
    raw = _name_to_value(obj["labels"])
    scheme, problems = parse_label_scheme(raw, obj.get("regions_class_order"))
    if problems:
        raise InputError(problems[0], path=path)
    regions = dict(scheme.regions)
    regions.update(parse_regions(obj.get("regions", {}), source=path))
    declared = label_entries(raw)  # integer entries, not values named by regions
    labels = sorted({v for v in declared.values() if v not in (0, scheme.ignore_label)})
    region_based = scheme.regions_class_order is not None
    names = {str(v): n for v, n in label_names(scheme.labels).items()}
    names.update({name: name for name in regions})
    return DatasetTargets(
        [] if region_based else labels,
        regions,
        scheme.ignore_label,
        names,
        region_based,
        scheme.regions_class_order,
    )
