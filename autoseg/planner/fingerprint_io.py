"""``fingerprint.json`` <-> :class:`Fingerprint` (strict, versioned; int keys as strings)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from autoseg.artefacts import read_json
from autoseg.atomic import atomic_write_json
from autoseg.errors import PlansError
from autoseg.frozendict import FrozenDict
from autoseg.planner.fingerprint import (
    FINGERPRINT_SCHEMA_VERSION,
    CaseFingerprint,
    Fingerprint,
    IntensityStats,
)

__all__ = ["fingerprint_from_dict", "fingerprint_to_dict", "load_fingerprint", "save_fingerprint"]


def _int_keys(mapping: Any, cast: Any = float) -> FrozenDict[int, Any]:
    return FrozenDict({int(k): cast(v) for k, v in mapping.items()})


def _case_to_dict(case: CaseFingerprint) -> dict[str, Any]:
    return {
        "case_id": case.case_id,
        "spacing": list(case.spacing),
        "shape": list(case.shape),
        "shape_after_crop": list(case.shape_after_crop),
        "intensity": [dataclasses.asdict(s) for s in case.intensity],
        "voxels_per_class": {str(k): v for k, v in case.voxels_per_class.items()},
        "classes_present": list(case.classes_present),
        "component_sizes": {str(k): list(v) for k, v in case.component_sizes.items()},
        "num_components": {str(k): v for k, v in case.num_components.items()},
        "class_centroids": {str(k): list(v) for k, v in case.class_centroids.items()},
    }


def _case_from_dict(data: dict[str, Any]) -> CaseFingerprint:
    return CaseFingerprint(
        case_id=str(data["case_id"]),
        spacing=tuple(float(v) for v in data["spacing"]),  # type: ignore[arg-type]
        shape=tuple(int(v) for v in data["shape"]),  # type: ignore[arg-type]
        shape_after_crop=tuple(int(v) for v in data["shape_after_crop"]),  # type: ignore[arg-type]
        intensity=tuple(IntensityStats(**s) for s in data["intensity"]),
        voxels_per_class=_int_keys(data["voxels_per_class"], int),
        component_sizes=_int_keys(data["component_sizes"], lambda v: tuple(int(x) for x in v)),
        num_components=_int_keys(data["num_components"], int),
        class_centroids=_int_keys(data["class_centroids"], lambda v: tuple(float(x) for x in v)),
    )


def fingerprint_to_dict(fingerprint: Fingerprint) -> dict[str, Any]:
    """Plain-JSON form of the fingerprint."""
    return {
        "schema_version": fingerprint.schema_version,
        "autoseg_version": fingerprint.autoseg_version,
        "dataset_name": fingerprint.dataset_name,
        "channel_names": list(fingerprint.channel_names),
        "labels": dict(fingerprint.labels),
        "median_spacing": list(fingerprint.median_spacing),
        "median_shape_after_crop": list(fingerprint.median_shape_after_crop),
        "per_channel": [dataclasses.asdict(s) for s in fingerprint.per_channel],
        "class_voxel_fraction": {str(k): v for k, v in fingerprint.class_voxel_fraction.items()},
        "class_case_fraction": {str(k): v for k, v in fingerprint.class_case_fraction.items()},
        "cases": [_case_to_dict(c) for c in fingerprint.cases],
        "inputs": dict(fingerprint.inputs),
    }


def fingerprint_from_dict(data: Any) -> Fingerprint:
    """Strict inverse of :func:`fingerprint_to_dict`.

    Raises:
        PlansError: on another schema version or a malformed document.
    """
    if not isinstance(data, dict) or data.get("schema_version") != FINGERPRINT_SCHEMA_VERSION:
        raise PlansError(
            "fingerprint.json is from another autoseg version or malformed; re-run 'autoseg plan'"
        )
    try:
        return Fingerprint(
            dataset_name=str(data["dataset_name"]),
            channel_names=tuple(data["channel_names"]),
            labels=FrozenDict({str(k): int(v) for k, v in data["labels"].items()}),
            cases=tuple(_case_from_dict(c) for c in data["cases"]),
            per_channel=tuple(IntensityStats(**s) for s in data["per_channel"]),
            class_voxel_fraction=_int_keys(data["class_voxel_fraction"]),
            class_case_fraction=_int_keys(data["class_case_fraction"]),
            median_spacing=tuple(float(v) for v in data["median_spacing"]),  # type: ignore[arg-type]
            median_shape_after_crop=tuple(int(v) for v in data["median_shape_after_crop"]),  # type: ignore[arg-type]
            inputs=FrozenDict(dict(data["inputs"])),
            schema_version=int(data["schema_version"]),
            autoseg_version=str(data["autoseg_version"]),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise PlansError(
            f"fingerprint.json is malformed ({err!r}); re-run 'autoseg plan'"
        ) from None


def save_fingerprint(path: Path, fingerprint: Fingerprint) -> None:
    """Write fingerprint.json atomically."""
    atomic_write_json(path, fingerprint_to_dict(fingerprint))


def load_fingerprint(path: Path) -> Fingerprint:
    """Read fingerprint.json.

    Raises:
        PlansError: if it is missing or malformed.
    """
    data = read_json(path)
    if data is None:
        raise PlansError("fingerprint.json missing or unreadable; run 'autoseg plan'", path=path)
    try:
        return fingerprint_from_dict(data)
    except PlansError as err:
        raise PlansError(err.message, path=path) from None
