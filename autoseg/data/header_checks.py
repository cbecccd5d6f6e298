"""What makes a file, its header or its voxel type unusable: plain messages, no Problems.

:mod:`autoseg.data.checks` wraps them into the per-case problems of ``autoseg verify`` and
case loading.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np

from autoseg.data.geometry import Geometry

__all__ = [
    "MAX_SPACING_MM",
    "MIN_DIRECTION_DETERMINANT",
    "file_problem",
    "float32_problem",
    "geometry_problem",
    "voxel_type_problem",
]

MAX_SPACING_MM = 1000.0
"""Largest plausible voxel spacing (mm): larger means a broken affine or wrong units."""
MIN_DIRECTION_DETERMINANT = 1e-3
"""A direction matrix (unit columns) with a smaller determinant is singular: two voxel axes
(nearly) coincide, and no world position can be mapped back to a voxel."""
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _fmt(values: object) -> str:
    return "(" + ", ".join(f"{float(v):.6g}" for v in np.asarray(values).ravel()) + ")"


def file_problem(path: Path) -> str | None:
    """Why ``path`` is not a readable regular file (None when it is one)."""
    try:
        if path.is_file():
            return None
        if path.is_symlink():
            try:
                path.stat()
            except FileNotFoundError:
                return f"symbolic link to {os.readlink(path)!r}, which does not exist"
            except OSError as err:
                if err.errno == errno.ELOOP:
                    return "symbolic link loop (the link points back at itself)"
                return f"cannot follow the symbolic link ({err.strerror})"
        if path.is_dir():
            return "is a folder, not an image file"
        if path.exists():
            return "is not a regular file (a device, pipe or socket); give an image file"
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "symbolic link loop (the link points back at itself)"
        return f"cannot access the file ({err.strerror})"
    return "file not found"


def geometry_problem(geometry: Geometry) -> str | None:
    """What makes ``geometry`` unusable, or None: NaN/infinite values, a spacing that is not
    positive or beyond :data:`MAX_SPACING_MM`, a singular direction matrix."""
    spacing = np.asarray(geometry.spacing)
    values = np.concatenate([spacing, geometry.origin, geometry.direction])
    if not np.isfinite(values).all():
        return (
            f"the header's affine holds NaN or infinite values (spacing {_fmt(spacing)}, "
            f"origin {_fmt(geometry.origin)}); fix the file's sform/qform"
        )
    if (spacing <= 0).any():
        return (
            f"voxel spacing (Z, Y, X) {_fmt(spacing)} mm must be positive: the header's "
            "affine (or pixdim) has a zero or negative voxel size"
        )
    if (spacing > MAX_SPACING_MM).any():
        return (
            f"voxel spacing (Z, Y, X) {_fmt(spacing)} mm is implausible (more than "
            f"{MAX_SPACING_MM:g} mm per voxel); check the header's affine and units"
        )
    if abs(np.linalg.det(geometry.direction_matrix)) < MIN_DIRECTION_DETERMINANT:
        return (
            "the header's direction matrix is singular (two voxel axes point the same way); "
            "fix the file's sform/qform"
        )
    return None


def voxel_type_problem(dtype: np.dtype) -> str | None:  # type: ignore[type-arg]
    """Why voxels of ``dtype`` are unusable (None for bool, integer and floating point)."""
    if dtype.fields is not None:
        return (
            f"voxels are RGB or another compound type ({dtype.descr}); autoseg needs one "
            "number per voxel: convert to grey scale, or give each colour as a channel file"
        )
    if np.issubdtype(dtype, np.complexfloating):
        return (
            f"voxels are complex numbers ({dtype}); autoseg needs real values: save the "
            "magnitude (np.abs) or the real part"
        )
    if not (dtype == np.bool_ or np.issubdtype(dtype, np.number)):
        return f"voxel type {dtype} is not a number"
    return None


def float32_problem(array: np.ndarray) -> str | None:
    """Why finite values of a float type wider than float32 do not fit float32, or None."""
    if not np.issubdtype(array.dtype, np.floating) or array.dtype.itemsize <= 4 or not array.size:
        return None
    largest = max(abs(float(array.max())), abs(float(array.min())))
    if not np.isfinite(largest) or largest <= _FLOAT32_MAX:
        return None
    return (
        f"values up to {largest:.3g} overflow float32 (largest {_FLOAT32_MAX:.3g}), which "
        "autoseg computes in; rescale the image"
    )
