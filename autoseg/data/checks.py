"""Integrity checks shared by ``autoseg verify``, the dataset loaders and case loading.

Each check is implemented once, here, as a pure function that returns
:class:`Problem` records instead of raising: ``autoseg verify`` collects every problem,
while :func:`autoseg.data.case_io.load_case` and the strict loaders raise the first one
as a :class:`~autoseg.errors.DatasetError`. Arrays are (Z, Y, X) or (C, Z, Y, X).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autoseg.data.geometry import Geometry
from autoseg.data.header_checks import (
    file_problem,
    float32_problem,
    geometry_problem,
    voxel_type_problem,
)
from autoseg.errors import AutosegError, DatasetError, one_line
from autoseg.names import case_id_problem

__all__ = [
    "CHECKS_VERSION",
    "Problem",
    "check_case_ids",
    "check_declared_labels",
    "check_finite",
    "check_float32_range",
    "check_geometry",
    "check_label_usage",
    "check_label_values",
    "check_num_training",
    "check_roi_values",
    "check_same_grid",
    "check_volume_dims",
    "check_voxel_type",
    "missing_file_problem",
    "unique_values",
]

CHECKS_VERSION = 2
"""Raised whenever a check is added or tightened: a dataset verified by fewer checks (plan's
``verify.json``, keyed by :func:`autoseg.data.verify_cache.checks_digest`, which holds this
number and the checks' source) is verified again. 2: case ids, file kinds, geometry, voxel
types, gzip."""
SPACING_RTOL = 1e-3
"""Relative tolerance on voxel spacing between the files of one case."""
ORIGIN_TOL_MM = 1e-2
"""Absolute tolerance in mm on the origin between the files of one case."""
DIRECTION_TOL = 1e-3
"""Absolute tolerance on each direction-matrix element between the files of one case."""
_MAX_LISTED = 8
_CHUNK = 1 << 22


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset; ``str(problem)`` is the line the user sees.

    Attributes:
        case_id: The case it belongs to (None for dataset-level problems).
        path: The offending file (dataset.json, the CSV, or an image).
        check: Short machine-readable name of the check (``"shape_mismatch"``, ...).
        message: What is wrong, stating the rule and the offending value.
        warning: Worth knowing but no reason to stop (a constant image, an unused label).
    """

    case_id: str | None
    path: Path | None
    check: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        return one_line(self.case_id, self.path, self.message)

    def to_error(self, extra: int = 0) -> DatasetError:
        """The :class:`DatasetError` to raise for this problem (``extra`` more were found)."""
        message = self.message
        if extra:
            message += f" (and {extra} more problem(s); run 'autoseg verify' to list them)"
        return DatasetError(message, case_id=self.case_id, path=self.path)

    @classmethod
    def from_error(cls, err: AutosegError, check: str) -> Problem:
        """Turn a raised error into a problem of kind ``check``."""
        return cls(err.case_id, err.path, check, err.message)

    def to_dict(self) -> dict[str, str | None]:
        """Plain-JSON form."""
        return {
            "case_id": self.case_id,
            "path": str(self.path) if self.path else None,
            "check": self.check,
            "message": self.message,
            "severity": "warning" if self.warning else "error",
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Problem:
        """Inverse of :meth:`to_dict`."""
        path = data["path"]
        return cls(
            None if data["case_id"] is None else str(data["case_id"]),
            Path(path) if path else None,
            str(data["check"]),
            str(data["message"]),
            warning=data["severity"] == "warning",
        )


def missing_file_problem(case_id: str | None, path: Path) -> Problem:
    """The problem reported for a file that a dataset names but that cannot be read as one:
    missing, a dangling or looping symbolic link, a folder, a device or pipe."""
    return Problem(case_id, path, "missing_file", file_problem(path) or "file not found")


def check_geometry(geometry: Geometry, *, case_id: str, path: Path) -> list[Problem]:
    """A problem when the geometry read from ``path`` is unusable (see
    :func:`~autoseg.data.header_checks.geometry_problem`): prediction would copy it."""
    problem = geometry_problem(geometry)
    return [] if problem is None else [Problem(case_id, path, "bad_geometry", problem)]


def check_voxel_type(array: np.ndarray, *, case_id: str, path: Path) -> list[Problem]:
    """A problem unless the voxels are real scalars (bool, integer or floating point)."""
    problem = voxel_type_problem(array.dtype)
    return [] if problem is None else [Problem(case_id, path, "voxel_type", problem)]


def _fmt_values(values: Iterable[float | int]) -> str:
    items = [_fmt_number(v) for v in values]
    if len(items) > _MAX_LISTED:
        items = [*items[:_MAX_LISTED], "..."]
    return "(" + ", ".join(items) + ")"


def _fmt_number(value: float | int) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:.6g}"


def unique_values(array: np.ndarray) -> np.ndarray:
    """Sorted distinct values of ``array``; linear time for integer arrays of small range."""
    if array.size == 0:
        return np.zeros(0, dtype=array.dtype)
    if array.dtype == np.bool_:
        array = array.view(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        low, high = int(array.min()), int(array.max())
        if high - low < 1 << 16:
            flat = array.reshape(-1)
            counts = np.zeros(high - low + 1, dtype=np.int64)
            for start in range(0, flat.size, _CHUNK):  # bounded temporary memory
                chunk = flat[start : start + _CHUNK].astype(np.int64) - low
                counts += np.bincount(chunk, minlength=counts.size)
            return (np.flatnonzero(counts) + low).astype(array.dtype)
    return np.unique(array)


def check_volume_dims(
    array: np.ndarray, *, channels: int, multi_channel_file: bool, case_id: str, path: Path
) -> tuple[np.ndarray | None, Problem | None]:
    """Bring an image read from ``path`` to (C, Z, Y, X), or say why its dimensions are wrong.

    A 3D file is expected unless ``multi_channel_file`` (an MSD 4D image holding ``channels``
    volumes). A 4D file with a single volume counts as 3D.

    Returns:
        ``(array_czyx, None)`` when the dimensions fit, else ``(None, problem)``.
    """
    if multi_channel_file and channels > 1:
        if array.ndim == 4 and array.shape[0] == channels:
            return array, None
        got = f"{array.shape[0]} volumes" if array.ndim == 4 else f"a {array.ndim}D image"
        message = f"expected a 4D image holding {channels} channels, got {got}"
        return None, Problem(case_id, path, "dimensionality", message)
    if array.ndim == 3:
        return array[None], None
    if array.ndim == 4 and array.shape[0] == 1:
        return array, None
    if array.ndim == 4:
        message = (
            f"expected a 3D image, got a 4D image with {array.shape[0]} volumes; "
            "split it into one file per channel"
        )
    else:
        message = f"expected a 3D image, got {array.ndim}D with shape {array.shape}"
    return None, Problem(case_id, path, "dimensionality", message)


def check_same_grid(
    geometry: Geometry, reference: Geometry, *, reference_path: Path, case_id: str, path: Path
) -> list[Problem]:
    """Problems when ``geometry`` (of ``path``) does not lie on the reference image's grid.

    Shape must match exactly; spacing within :data:`SPACING_RTOL` (relative), origin within
    :data:`ORIGIN_TOL_MM` and direction within :data:`DIRECTION_TOL`.
    """
    if geometry_problem(geometry) or geometry_problem(reference):
        return []  # check_geometry reports it; comparing NaNs says nothing
    problems = []
    if geometry.shape != reference.shape:
        message = (
            f"shape (Z, Y, X) {geometry.shape} differs from {reference.shape} of "
            f"{reference_path.name}"
        )
        problems.append(Problem(case_id, path, "shape_mismatch", message))
    differences = reference.differences(
        geometry.with_shape(reference.shape),
        spacing_tol=SPACING_RTOL,
        origin_tol_mm=ORIGIN_TOL_MM,
        direction_tol=DIRECTION_TOL,
    )
    if differences:
        message = (
            f"geometry differs from {reference_path.name}: {'; '.join(differences)} "
            "(spacing in mm along Z, Y, X; origin in mm as x, y, z)"
        )
        problems.append(Problem(case_id, path, "geometry_mismatch", message))
    return problems


def check_finite(array: np.ndarray, *, case_id: str, path: Path) -> list[Problem]:
    """A problem when a floating-point array (image, label or ROI) holds NaN or Inf voxels."""
    if not np.issubdtype(array.dtype, np.floating):
        return []
    finite = np.isfinite(array)
    if finite.all():
        return []
    nan = int(np.isnan(array).sum())
    inf = int(finite.size - finite.sum()) - nan
    message = f"file holds {nan} NaN and {inf} infinite voxel(s); every voxel must be finite"
    return [Problem(case_id, path, "non_finite", message)]


def check_float32_range(array: np.ndarray, *, case_id: str, path: Path) -> list[Problem]:
    """A problem when finite values of a wider float type overflow float32, the type every
    image is computed in (1e300 would become inf)."""
    problem = float32_problem(array)
    return [] if problem is None else [Problem(case_id, path, "float32_overflow", problem)]


def check_label_values(
    label: np.ndarray, declared: Sequence[int], *, case_id: str, path: Path
) -> list[Problem]:
    """Problems when a label map holds non-integer or undeclared values.

    A float label map with integral values is fine (public datasets ship those).
    """
    if np.issubdtype(label.dtype, np.floating):
        finite = label[np.isfinite(label)]
        fractional = finite[finite != np.floor(finite)]
        if fractional.size:
            examples = _fmt_values(np.unique(fractional)[:_MAX_LISTED])
            message = f"label map holds non-integer values {examples}; labels must be integers"
            return [Problem(case_id, path, "non_integer_label", message)]
        values = unique_values(finite)
    else:
        values = unique_values(label)
    undeclared = sorted(set(values.tolist()) - set(declared))
    if undeclared:
        message = (
            f"label values {_fmt_values(undeclared)} are not declared in the dataset's labels "
            f"(declared: {_fmt_values(sorted(declared))})"
        )
        return [Problem(case_id, path, "undeclared_label", message)]
    return []


def check_label_usage(
    labels: Mapping[str, int], found: Sequence[Sequence[int]], *, source: Path
) -> list[Problem]:
    """Warnings about the label values found in the label maps (one tuple per case read):
    every map holds only background, or a declared label occurs in none."""
    if not found:
        return []
    present = {int(v) for values in found for v in values}
    if present <= {0}:
        message = f"every label map ({len(found)}) holds only background (0): nothing to learn"
        return [Problem(None, source, "all_background", message, warning=True)]
    warnings = []
    for name, value in sorted(labels.items(), key=lambda item: item[1]):
        if value != 0 and value not in present:
            message = (
                f"label {value} ({name!r}) is declared but occurs in no label map; its scores "
                "will be undefined"
            )
            warnings.append(Problem(None, source, "unused_label", message, warning=True))
    return warnings


def check_roi_values(roi: np.ndarray, *, case_id: str, path: Path) -> list[Problem]:
    """A problem when an ROI mask cannot be used: a negative value, or no voxel inside.

    A voxel is inside the ROI when its value is > 0, as DeepMedic reads its masks (which
    store e.g. 0.99999997 for 1). The message shows the values found, unrounded.
    """
    values = unique_values(roi)
    if values.size == 0:
        return []
    low, high = float(values[0]), float(values[-1])
    found = _exact_values(values)
    if low < 0:
        message = (
            f"ROI mask holds negative values (values {found}); a mask is > 0 inside the "
            "region of interest and 0 outside"
        )
        return [Problem(case_id, path, "roi_unusable", message)]
    if high <= 0:
        message = f"ROI mask is empty: no voxel is > 0 (values {found})"
        return [Problem(case_id, path, "roi_unusable", message)]
    return []


def _exact_values(values: np.ndarray) -> str:
    """The distinct values, at full precision (at most :data:`_MAX_LISTED`, then "...")."""
    items = [f"{float(v):.9g}" for v in values[:_MAX_LISTED]]
    if values.size > _MAX_LISTED:
        items += ["...", f"{float(values[-1]):.9g}"]
    return "(" + ", ".join(items) + ")"


def check_declared_labels(labels: Mapping[str, int], *, source: Path) -> list[Problem]:
    """Problems with the declared label values: background 0, unique and consecutive 0..N."""
    problems = []
    values = sorted(labels.values())
    if 0 not in values:
        problems.append(
            Problem(None, source, "labels", "labels must declare background with value 0")
        )
    repeated = sorted(v for v, n in Counter(values).items() if n > 1)
    if repeated:
        names = [name for name, v in labels.items() if v in repeated]
        message = f"label values {_fmt_values(repeated)} are declared twice (names {names})"
        problems.append(Problem(None, source, "labels", message))
    distinct = sorted(set(values))
    if any(v < 0 for v in distinct):
        message = f"label values must be >= 0, got {_fmt_values(distinct)}"
        problems.append(Problem(None, source, "labels", message))
    elif 0 in distinct and distinct != list(range(len(distinct))):
        problems.append(_skipping_labels(distinct, source))
    return problems


def _skipping_labels(values: list[int], source: Path) -> Problem:
    remap = ", ".join(f"{old} -> {new}" for new, old in enumerate(values) if old != new)
    message = (
        f"label values {_fmt_values(values)} skip numbers; autoseg needs consecutive values "
        f"0..{len(values) - 1}: remap {remap} in the label maps and the declared labels"
    )
    return Problem(None, source, "label_values_skip", message)


def check_case_ids(
    case_ids: Sequence[str], *, source: Path, what: str = "training"
) -> list[Problem]:
    """Problems with case ids: ids that cannot name files (:func:`autoseg.names.case_id_problem`:
    separators, ``..``, control characters, ...), duplicates, and (for training cases) an
    empty dataset."""
    problems = []
    if not case_ids and what == "training":
        problems.append(Problem(None, source, "empty_dataset", "the dataset has no training cases"))
    for case_id in case_ids:
        problem = case_id_problem(case_id)
        if problem is not None:  # the id is not echoed raw: it may hold control characters
            problems.append(Problem(None, source, "case_id", problem))
    for case_id, count in Counter(case_ids).items():
        if count > 1 and case_id_problem(case_id) is None:
            message = f"case id is used by {count} {what} cases; case ids must be unique"
            problems.append(Problem(case_id, source, "duplicate_case", message))
    return problems


def check_num_training(declared: int, found: int, *, source: Path) -> list[Problem]:
    """A problem when dataset.json's ``numTraining`` disagrees with the cases found."""
    if declared == found:
        return []
    message = f"numTraining is {declared} but {found} training case(s) were found"
    return [Problem(None, source, "num_training", message)]
