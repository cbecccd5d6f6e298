"""On-disk form of a preprocessed case, memory-mappable by training.

Per case, in ``preprocessed/<data_id>/``::

    <case>.npy         float32 C×Z×Y×X (cropped, normalised, resampled)
    <case>_seg.npy     uint8 (int16 beyond 255 labels) Z×Y×X label map
    <case>_roi.npy     uint8 Z×Y×X ROI mask (only when the plan uses ROI masks)
    <case>_locs.npz    sampled voxel coordinates (int32 N×3, Z/Y/X) per label value,
                       keys "0", "1", ...; "0" holds background inside the ROI / body
    <case>.json        CaseProperties and, under "files", the size and SHA-256 of each
                       array file (:func:`autoseg.artefacts.file_record`), written last:
                       its presence with matching inputs and matching files marks the
                       case complete

Every file is written atomically, and nothing is pickled. A re-run of ``autoseg plan``
checks each case's files against their records and redoes damaged ones; training checks
them before it touches a fold (:func:`check_preprocessed`), and loading compares sizes.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from autoseg.artefacts import file_record, read_json, record_mismatch
from autoseg.atomic import atomic_path, atomic_save_npy, atomic_write_json
from autoseg.data.geometry import Geometry
from autoseg.errors import DatasetError
from autoseg.frozendict import FrozenDict
from autoseg.log import get_logger
from autoseg.names import inside
from autoseg.typing import Shape3, Spacing3

__all__ = [
    "CASE_SCHEMA_VERSION",
    "CaseProperties",
    "PreprocessedCase",
    "case_damage",
    "check_preprocessed",
    "is_case_complete",
    "load_preprocessed_case",
    "sample_class_locations",
    "save_preprocessed_case",
]

CASE_SCHEMA_VERSION = 1
LOCATIONS_PER_CLASS = 10_000
"""Voxel locations kept per class (at least ``MIN_LOCATION_FRACTION`` of its voxels)."""
MIN_LOCATION_FRACTION = 0.01
_log = get_logger(__name__)


@dataclass(frozen=True)
class CaseProperties:
    """What is needed to map a preprocessed case back to its original image.

    Attributes:
        original: Geometry of the raw case (first channel).
        crop_box: Half-open (start, stop) per axis (Z, Y, X) of the crop in original voxels.
        target_spacing: Spacing (mm, Z/Y/X) of the stored arrays.
        shape_after_resample: Shape of the stored arrays (Z, Y, X).
        classes_present: Label values present in the case (empty for unlabelled cases).
        has_roi: An ROI mask is stored with the case.
        inputs: Digests of the raw files and of the preprocessing settings.
    """

    case_id: str
    original: Geometry
    crop_box: tuple[tuple[int, int], ...]
    target_spacing: Spacing3
    shape_after_resample: Shape3
    classes_present: tuple[int, ...] = ()
    has_roi: bool = False
    inputs: Mapping[str, str] = field(default_factory=dict)
    schema_version: int = CASE_SCHEMA_VERSION

    @property
    def shape_after_crop(self) -> Shape3:
        return tuple(b - a for a, b in self.crop_box)  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "case_id": self.case_id,
            "original": self.original.to_dict(),
            "crop_box": [list(b) for b in self.crop_box],
            "target_spacing": list(self.target_spacing),
            "shape_after_resample": list(self.shape_after_resample),
            "classes_present": list(self.classes_present),
            "has_roi": self.has_roi,
            "inputs": dict(self.inputs),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CaseProperties:
        return cls(
            case_id=str(data["case_id"]),
            original=Geometry.from_dict(dict(data["original"])),
            crop_box=tuple((int(a), int(b)) for a, b in data["crop_box"]),
            target_spacing=tuple(float(v) for v in data["target_spacing"]),  # type: ignore[arg-type]
            shape_after_resample=tuple(int(v) for v in data["shape_after_resample"]),  # type: ignore[arg-type]
            classes_present=tuple(int(v) for v in data["classes_present"]),
            has_roi=bool(data["has_roi"]),
            inputs=FrozenDict(dict(data["inputs"])),
            schema_version=int(data["schema_version"]),
        )


@dataclass(frozen=True)
class PreprocessedCase:
    """A preprocessed case; arrays are memory-mapped when loaded from disk."""

    properties: CaseProperties
    image: np.ndarray
    seg: np.ndarray | None
    roi: np.ndarray | None
    locations: Mapping[int, np.ndarray]


_SUFFIXES = {
    "image": ".npy",
    "seg": "_seg.npy",
    "roi": "_roi.npy",
    "locs": "_locs.npz",
    "json": ".json",
}


def _paths(folder: Path, case_id: str) -> dict[str, Path]:
    return {key: inside(folder, case_id, suffix) for key, suffix in _SUFFIXES.items()}


def sample_class_locations(
    seg: np.ndarray, label_values: tuple[int, ...], region: np.ndarray | None, seed: int
) -> dict[int, np.ndarray]:
    """Sample voxel coordinates (int32 N×3) per label value.

    Foreground classes keep ``LOCATIONS_PER_CLASS`` of their voxels (or
    ``MIN_LOCATION_FRACTION`` of them if that is more). Background (0) is drawn by rejection
    sampling inside ``region`` (the ROI or the body), so huge backgrounds cost nothing.
    """
    rng = np.random.default_rng(seed)
    flat = seg.reshape(-1)
    result: dict[int, np.ndarray] = {}
    for value in label_values:
        if value == 0:
            indices = _sample_background(flat, region, rng)
        else:
            indices = np.flatnonzero(flat == value)
            keep = min(
                indices.size,
                max(LOCATIONS_PER_CLASS, math.ceil(indices.size * MIN_LOCATION_FRACTION)),
            )
            if keep < indices.size:
                indices = np.sort(rng.choice(indices, keep, replace=False))
        coords = (
            np.stack(np.unravel_index(indices, seg.shape), axis=1)
            if indices.size
            else np.zeros((0, 3), dtype=np.int64)
        )
        result[value] = coords.astype(np.int32)
    return result


def _sample_background(
    flat: np.ndarray, region: np.ndarray | None, rng: np.random.Generator
) -> np.ndarray:
    allowed = flat == 0
    if region is not None:
        allowed &= region.reshape(-1).astype(bool)
    candidates = rng.integers(0, flat.size, size=4 * LOCATIONS_PER_CLASS)
    picked = np.unique(candidates[allowed[candidates]])
    if picked.size < LOCATIONS_PER_CLASS // 10:  # a tiny region: enumerate it instead
        picked = np.flatnonzero(allowed)
        if picked.size > LOCATIONS_PER_CLASS:
            picked = np.sort(rng.choice(picked, LOCATIONS_PER_CLASS, replace=False))
    return picked[:LOCATIONS_PER_CLASS]


def save_preprocessed_case(folder: Path, case: PreprocessedCase) -> None:
    """Write every file of a case atomically, the properties JSON (with the files' sizes and
    digests) last."""
    paths = _paths(folder, case.properties.case_id)
    atomic_save_npy(paths["image"], case.image.astype(np.float32, copy=False))
    written = ["image", "locs"]
    if case.seg is not None:
        dtype = np.uint8 if int(case.seg.max(initial=0)) < 256 else np.int16
        atomic_save_npy(paths["seg"], case.seg.astype(dtype, copy=False))
        written.append("seg")
    if case.roi is not None:
        atomic_save_npy(paths["roi"], case.roi.astype(np.uint8, copy=False))
        written.append("roi")
    with atomic_path(paths["locs"]) as tmp, open(tmp, "wb") as handle:
        arrays: dict[str, Any] = {str(k): v for k, v in case.locations.items()}
        np.savez(handle, **arrays)
    files = {paths[key].name: file_record(paths[key]) for key in sorted(written)}
    atomic_write_json(paths["json"], {**case.properties.to_dict(), "files": files})


def case_damage(folder: Path, case_id: str, *, deep: bool = True) -> str | None:
    """What is wrong with a preprocessed case's files, or None when they are as written.

    Every file recorded in ``<case>.json`` must have its size and (with ``deep``) its digest;
    a case written by an autoseg that recorded none counts as damaged (plan redoes it).
    """
    paths = _paths(folder, case_id)
    data = read_json(paths["json"])
    if not isinstance(data, dict):
        return f"{paths['json'].name} is missing or unreadable"
    files = data.get("files")
    if not isinstance(files, dict) or paths["image"].name not in files:
        return f"{paths['json'].name} records no file sizes (written by an older autoseg)"
    for name, record in sorted(files.items()):
        mismatch = record_mismatch(inside(folder, name), record, deep=deep)
        if mismatch is not None:
            return f"{name}: {mismatch}"
    return None


def is_case_complete(folder: Path, case_id: str, inputs: Mapping[str, str]) -> bool:
    """True when the case's properties exist with these inputs and its files are as written
    (a damaged case is logged and counts as incomplete, so plan redoes it)."""
    data = read_json(_paths(folder, case_id)["json"])
    if not isinstance(data, dict) or data.get("inputs") != dict(inputs):
        return False
    damage = case_damage(folder, case_id)
    if damage is not None:
        _log.warning("preprocessed case %s is damaged (%s); redoing it", case_id, damage)
    return damage is None


def check_preprocessed(folder: Path, case_ids: Sequence[str]) -> None:
    """Check that every case of ``case_ids`` is preprocessed in ``folder`` and undamaged.

    Raises:
        DatasetError: naming the first missing or damaged case (and how many there are).
    """
    damaged = [(c, d) for c in case_ids if (d := case_damage(folder, c)) is not None]
    if damaged:
        case_id, damage = damaged[0]
        more = f" ({len(damaged)} damaged or missing cases)" if len(damaged) > 1 else ""
        raise DatasetError(
            f"preprocessed case is damaged or missing ({damage}){more}; run 'autoseg plan' "
            "again, which redoes it",
            case_id=case_id,
            path=folder,
        )


def load_preprocessed_case(folder: Path, case_id: str, *, mmap: bool = True) -> PreprocessedCase:
    """Load a preprocessed case (arrays memory-mapped unless ``mmap`` is False).

    Raises:
        DatasetError: if the case is missing or incomplete (re-run ``autoseg plan``).
    """
    paths = _paths(folder, case_id)
    data = read_json(paths["json"])
    if not isinstance(data, dict):
        raise DatasetError(
            "preprocessed case missing or incomplete; re-run 'autoseg plan'",
            case_id=case_id,
            path=paths["json"],
        )
    damage = case_damage(folder, case_id, deep=False)
    if damage is not None:
        raise DatasetError(
            f"preprocessed case is damaged ({damage}); run 'autoseg plan' again, which redoes it",
            case_id=case_id,
            path=folder,
        )
    mode: Literal["r"] | None = "r" if mmap else None
    try:
        image = np.load(paths["image"], mmap_mode=mode, allow_pickle=False)
        seg = (
            np.load(paths["seg"], mmap_mode=mode, allow_pickle=False)
            if paths["seg"].is_file()
            else None
        )
        roi = (
            np.load(paths["roi"], mmap_mode=mode, allow_pickle=False)
            if paths["roi"].is_file()
            else None
        )
        with np.load(paths["locs"], allow_pickle=False) as archive:
            locations = {int(k): archive[k] for k in archive.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise DatasetError(
            f"preprocessed case unreadable ({err}); run 'autoseg plan' again",
            case_id=case_id,
            path=folder,
        ) from None
    return PreprocessedCase(CaseProperties.from_dict(data), image, seg, roi, FrozenDict(locations))
