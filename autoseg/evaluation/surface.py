"""Surface distances between two boolean masks, in mm (pure numpy/scipy).

The surface of a mask is its set of boundary voxels: mask voxels with a face neighbour
(6-neighbourhood) outside the mask; outside the image is background. Distances are
Euclidean, between voxel centres, in mm. See :mod:`autoseg.evaluation.metrics` for the
metrics built on them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from autoseg.typing import Spacing3

__all__ = ["check_masks", "check_spacing", "directed_surface_distances"]

_FACE_NEIGHBOURS = ndimage.generate_binary_structure(3, 1)
_EDT_MAX_VOXELS = 2_000_000
"""Bounding boxes up to this many voxels use the EDT; larger ones a k-d tree (faster there)."""


def check_masks(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays as boolean masks; they must be 3D (Z, Y, X) and of one shape.

    Raises:
        ValueError: otherwise.
    """
    pred = np.asarray(pred, dtype=bool)
    ref = np.asarray(ref, dtype=bool)
    if pred.shape != ref.shape or pred.ndim != 3:
        raise ValueError(f"masks must be 3D (Z, Y, X) of one shape, got {pred.shape=} {ref.shape=}")
    return pred, ref


def check_spacing(spacing_mm: Sequence[float]) -> Spacing3:
    """The spacing as three floats (mm along Z, Y, X).

    Raises:
        ValueError: unless it is three finite positive numbers.
    """
    spacing = tuple(float(s) for s in spacing_mm)
    if len(spacing) != 3 or not all(math.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"spacing_mm must be 3 positive numbers (Z, Y, X), got {spacing_mm=}")
    return spacing  # type: ignore[return-value]


def _bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    """Smallest box (one slice per axis) holding every True voxel of a non-empty mask."""
    box = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=others))
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def _boundary(mask: np.ndarray) -> np.ndarray:
    eroded = ndimage.binary_erosion(mask, structure=_FACE_NEIGHBOURS, border_value=0)
    return mask & ~eroded


def _distances_edt(
    pred_border: np.ndarray, ref_border: np.ndarray, spacing: Spacing3
) -> tuple[np.ndarray, np.ndarray]:
    to_ref = ndimage.distance_transform_edt(~ref_border, sampling=spacing)
    to_pred = ndimage.distance_transform_edt(~pred_border, sampling=spacing)
    return (
        np.asarray(to_ref[pred_border], dtype=np.float64),
        np.asarray(to_pred[ref_border], dtype=np.float64),
    )


def _distances_kdtree(
    pred_border: np.ndarray, ref_border: np.ndarray, spacing: Spacing3
) -> tuple[np.ndarray, np.ndarray]:
    scale = np.asarray(spacing, dtype=np.float64)
    pred_idx, ref_idx = np.argwhere(pred_border), np.argwhere(ref_border)

    def nearest(source: np.ndarray, target: np.ndarray) -> np.ndarray:
        _, index = cKDTree(target * scale).query(source * scale, k=1)
        offsets = (source - target[index]) * scale  # from integer offsets, as the EDT does
        return np.asarray(np.sqrt(np.sum(offsets**2, axis=1)), dtype=np.float64)

    return nearest(pred_idx, ref_idx), nearest(ref_idx, pred_idx)


def directed_surface_distances(
    pred: np.ndarray, ref: np.ndarray, spacing_mm: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Distances in mm from each boundary voxel of one mask to the other mask's surface.

    Both masks must be non-empty. Work is done on the bounding box of pred ∪ ref (exact: all
    voxels outside it are background), so a small structure in a large image costs little.
    Boxes up to ``_EDT_MAX_VOXELS`` use ``distance_transform_edt``; larger ones (e.g. a
    stray blob far from the object) a k-d tree over the boundary voxels, whose cost grows
    with the surface rather than the volume. Both give the exact Euclidean distances.

    Args:
        pred: Boolean mask (Z, Y, X), non-empty.
        ref: Boolean mask of the same shape, non-empty.
        spacing_mm: Voxel size in mm along (Z, Y, X).

    Returns:
        ``(pred_to_ref, ref_to_pred)``: float64 arrays with one distance per boundary voxel
        of ``pred`` and of ``ref`` respectively, in C (z, y, x) order of the voxels.

    Raises:
        ValueError: if a mask is empty, the shapes differ or the spacing is not positive.
    """
    pred, ref = check_masks(pred, ref)
    spacing = check_spacing(spacing_mm)
    if not pred.any() or not ref.any():
        raise ValueError("surface distances need two non-empty masks")
    box = _bounding_box(pred | ref)
    # Erosion treats outside the box as background (border_value=0): true of the full image
    # too, since the box holds every foreground voxel of both masks.
    pred_border = _boundary(pred[box])
    ref_border = _boundary(ref[box])
    if pred_border.size <= _EDT_MAX_VOXELS:
        return _distances_edt(pred_border, ref_border, spacing)
    return _distances_kdtree(pred_border, ref_border, spacing)
