"""Load one case's channels, label map and ROI mask as checked arrays.

:func:`load_case` is the only way the rest of autoseg reads a raw case: it runs the same
checks as ``autoseg verify`` (shared from :mod:`autoseg.data.checks`) and raises a
:class:`~autoseg.errors.DatasetError` naming the case and file, so fingerprinting,
preprocessing and prediction never see bad data. Arrays are C×Z×Y×X / Z×Y×X.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autoseg.data.checks import (
    Problem,
    check_finite,
    check_float32_range,
    check_geometry,
    check_label_values,
    check_roi_values,
    check_same_grid,
    check_volume_dims,
    check_voxel_type,
    missing_file_problem,
)
from autoseg.data.dataset import Case, Dataset
from autoseg.data.geometry import Geometry
from autoseg.data.imageio import read_image
from autoseg.errors import DatasetError

__all__ = [
    "CaseArrays",
    "CaseExpectations",
    "CaseInspection",
    "inspect_case",
    "load_case",
    "reference_image_path",
]


@dataclass(frozen=True)
class CaseArrays:
    """The checked arrays of one case.

    Attributes:
        case_id: The case's id.
        image: float32, C×Z×Y×X, channels in dataset order.
        label: int16, Z×Y×X, values as in the file (validated integral and declared), or
            None when not loaded or the case is unlabelled.
        roi: bool, Z×Y×X ROI mask (True where the mask file is > 0), or None.
        geometry: Geometry of the first channel (the reference for export).
    """

    case_id: str
    image: np.ndarray
    label: np.ndarray | None
    roi: np.ndarray | None
    geometry: Geometry


@dataclass(frozen=True)
class CaseExpectations:
    """What a case of a dataset must satisfy (small and picklable, for worker processes).

    Attributes:
        num_channels: Number of input channels.
        label_values: Declared label values (background 0 included).
    """

    num_channels: int
    label_values: tuple[int, ...]

    @classmethod
    def from_dataset(cls, dataset: Dataset) -> CaseExpectations:
        return cls(dataset.num_channels, tuple(dataset.label_values))


@dataclass(frozen=True)
class CaseInspection:
    """Result of :func:`inspect_case`: the arrays when every check passed, the problems, and
    warnings (no reason to stop: a constant image)."""

    arrays: CaseArrays | None
    problems: tuple[Problem, ...]
    warnings: tuple[Problem, ...] = ()


def reference_image_path(case: Case) -> Path:
    """The file whose header a prediction for ``case`` copies (its first channel's file)."""
    return case.channels[0]


def load_case(case: Case, dataset: Dataset, *, load_label: bool = True) -> CaseArrays:
    """Read and check one case.

    Args:
        case: The case to read.
        dataset: The dataset it belongs to (channel count, declared labels).
        load_label: Read the label map too (when the case has one).

    Returns:
        The case's arrays; ``image`` is float32 C×Z×Y×X.

    Raises:
        DatasetError: naming the case and file, for a missing or unreadable file, wrong
            dimensionality, a shape or geometry mismatch between the case's files, NaN/Inf
            voxels, non-integer or undeclared label values, or an unusable ROI mask
            (negative values, or no voxel > 0).
    """
    inspection = inspect_case(case, CaseExpectations.from_dataset(dataset), load_label=load_label)
    if inspection.arrays is None:
        raise inspection.problems[0].to_error(extra=len(inspection.problems) - 1)
    return inspection.arrays


def inspect_case(
    case: Case, expect: CaseExpectations, *, load_label: bool = True
) -> CaseInspection:
    """Read one case and run every per-case check, collecting all problems.

    Args:
        case: The case to read.
        expect: Channel count and declared label values.
        load_label: Read and check the label map too (when the case has one).

    Returns:
        The arrays (None exactly when at least one problem was found) and every problem.
    """
    problems: list[Problem] = []
    volumes = _read_channels(case, expect.num_channels, problems)
    ref = next(((path, geo) for path, _, geo in volumes), None)
    if ref is not None:
        for path, array, geometry in volumes:
            if path != ref[0]:
                problems += _grid(geometry, ref, case.case_id, path)
            finite = check_finite(array, case_id=case.case_id, path=path)
            problems += finite or check_float32_range(array, case_id=case.case_id, path=path)
    label = roi = None
    if load_label and case.label is not None:
        label = _read_3d(case.case_id, case.label, ref, problems)
        if label is not None:
            problems += check_label_values(
                label, expect.label_values, case_id=case.case_id, path=case.label
            )
    if case.roi is not None:
        roi = _read_3d(case.case_id, case.roi, ref, problems)
        if roi is not None:
            problems += check_roi_values(roi, case_id=case.case_id, path=case.roi)
    if ref is None and not problems:
        problems.append(Problem(case.case_id, None, "missing_file", "case has no channel files"))
    if problems or ref is None:
        return CaseInspection(None, tuple(problems))
    image = np.concatenate([a.astype(np.float32, copy=False) for _, a, _ in volumes], axis=0)
    arrays = CaseArrays(
        case.case_id,
        image,
        None if label is None else label.astype(np.int16),
        None if roi is None else roi > 0,
        ref[1],
    )
    return CaseInspection(arrays, (), tuple(_constant_warnings(case.case_id, volumes)))


def _constant_warnings(
    case_id: str, volumes: list[tuple[Path, np.ndarray, Geometry]]
) -> list[Problem]:
    """A warning per channel file whose voxels all hold one value (nothing to learn from)."""
    warnings = []
    for path, array, _ in volumes:
        for channel in array:
            low, high = channel.min(), channel.max()
            if low == high:
                value = f"{float(low):g}"
                message = f"image is constant (every voxel is {value}); nothing to learn from"
                warnings.append(Problem(case_id, path, "constant_image", message, warning=True))
                break
    return warnings


def _read(case_id: str, path: Path, problems: list[Problem]) -> tuple[np.ndarray, Geometry] | None:
    """Read ``path``; on failure append a missing-file, unreadable or voxel-type problem and
    return None. An unusable geometry is appended too (the voxels are still checked)."""
    if not path.is_file():
        problems.append(missing_file_problem(case_id, path))
        return None
    try:
        array, geometry = read_image(path)
    except DatasetError as err:
        problems.append(Problem(case_id, path, "unreadable", err.message))
        return None
    bad_type = check_voxel_type(array, case_id=case_id, path=path)
    if bad_type:
        problems += bad_type
        return None
    problems += check_geometry(geometry, case_id=case_id, path=path)
    return array, geometry


def _read_channels(
    case: Case, num_channels: int, problems: list[Problem]
) -> list[tuple[Path, np.ndarray, Geometry]]:
    """Read the case's channel files as (path, C×Z×Y×X array, geometry) triples."""
    if case.channels_in_one_file and len(case.channels) != 1:
        message = f"a 4D channel image must be one file, got {len(case.channels)}"
        problems.append(Problem(case.case_id, case.channels[0], "dimensionality", message))
        return []
    if not case.channels_in_one_file and len(case.channels) != num_channels:
        message = (
            f"case has {len(case.channels)} channel file(s) but the dataset declares "
            f"{num_channels} channel(s)"
        )
        problems.append(Problem(case.case_id, None, "missing_file", message))
    volumes = []
    for path in case.channels:
        read = _read(case.case_id, path, problems)
        if read is None:
            continue
        array, problem = check_volume_dims(
            read[0],
            channels=num_channels,
            multi_channel_file=case.channels_in_one_file,
            case_id=case.case_id,
            path=path,
        )
        if problem is not None:
            problems.append(problem)
        elif array is not None:
            volumes.append((path, array, read[1]))
    return volumes


def _read_3d(
    case_id: str, path: Path, ref: tuple[Path, Geometry] | None, problems: list[Problem]
) -> np.ndarray | None:
    """Read a label map or ROI mask as Z×Y×X, checked against the reference grid."""
    read = _read(case_id, path, problems)
    if read is None:
        return None
    array, problem = check_volume_dims(
        read[0], channels=1, multi_channel_file=False, case_id=case_id, path=path
    )
    if problem is not None:
        problems.append(problem)
    if array is None:
        return None
    if ref is not None:
        problems += _grid(read[1], ref, case_id, path)
    problems += check_finite(array, case_id=case_id, path=path)
    return array[0]  # value checks still run; any problem above withholds the arrays


def _grid(
    geometry: Geometry, ref: tuple[Path, Geometry], case_id: str, path: Path
) -> list[Problem]:
    return check_same_grid(geometry, ref[1], reference_path=ref[0], case_id=case_id, path=path)
