"""Spatial augmentation at sampling time: draw the transform first, then read only what it needs.

batchgenerators' ``SpatialTransform`` interpolates a region loaded in advance, large enough
for the largest rotation and zoom-out; for DeepMedic, whose widest pathway sees ~10 times its
output segment per axis, that region is hundreds of voxels wide per sample. Here the random
rotation / scaling / elastic deformation is drawn per sample with batchgenerators' coordinate
functions (the same distributions: rotation with probability ``p_rotation``, scaling with
``p_scale``, half the draws zooming in, half out), the bounding box of the transformed grid is
read from the memory-mapped case, and the patch is interpolated from it: splines for the
image (``scipy.ndimage.map_coordinates`` on float32, as ``interpolate_img`` does without its
float64 copies), per-label linear interpolation + argmax for labels
(``batchgenerators.augmentations.utils.interpolate_img``, from the labels' own smaller box
when only part of the patch needs labels). Untransformed samples are plain crops.

The grid is centred on the patch centre: output voxel ``i`` samples the source at
``start + (P - 1) / 2 + T(i - (P - 1) / 2)`` per axis. With ``in_plane_axis`` set (strongly
anisotropic data) rotation, scaling and deformation act in the plane across that axis only,
so its coordinates stay integers and thick slices are never interpolated between.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from batchgenerators.augmentations.utils import (
    create_matrix_rotation_x_3d,
    create_matrix_rotation_y_3d,
    create_matrix_rotation_z_3d,
    create_zero_centered_coordinate_mesh,
    elastic_deform_coordinates,
    interpolate_img,
)
from scipy.ndimage import map_coordinates

from autoseg.planner.plans import AugmentationPlan

__all__ = ["SpatialParams", "crop_padded", "draw_coordinates", "read_labels", "read_patch"]

ELASTIC_ALPHA = (0.0, 200.0)
ELASTIC_SIGMA = (9.0, 13.0)


@dataclass(frozen=True)
class SpatialParams:
    """The random spatial transform of training samples.

    Attributes:
        max_radians: Largest rotation about each axis (Z, Y, X), radians.
        p_rotation: Probability that a sample is rotated.
        scale_range: Range of the scale factor (> 1 zooms out).
        p_scale: Probability that a sample is scaled.
        p_elastic: Probability of an elastic deformation (0: never).
        in_plane_axis: The coarse axis of in-plane-only augmentation, or None.
        order: Spline order of the image interpolation: 1 (linear, the default, as in
            nnU-Net v2's augmentation; cubic splines made a 64x80x80 U-Net batch of 2 cost
            636 ms against 373 ms) or 3 (cubic).
    """

    max_radians: tuple[float, float, float]
    p_rotation: float
    scale_range: tuple[float, float]
    p_scale: float
    p_elastic: float
    in_plane_axis: int | None
    order: int = 1

    @classmethod
    def from_plan(cls, aug: AugmentationPlan, *, order: int = 1) -> SpatialParams:
        """Parameters of a plan's augmentation (``rotate_in_plane_only`` -> the axis rotated
        about is the coarse axis)."""
        axis = int(np.argmax(aug.rotation_degrees)) if aug.rotate_in_plane_only else None
        radians = tuple(math.radians(d) for d in aug.rotation_degrees)
        return cls(
            max_radians=(radians[0], radians[1], radians[2]),
            p_rotation=aug.p_rotation if max(radians) > 0 else 0.0,
            scale_range=(float(aug.scale_range[0]), float(aug.scale_range[1])),
            p_scale=aug.p_scale,
            p_elastic=aug.p_elastic if aug.elastic else 0.0,
            in_plane_axis=axis,
            order=order,
        )


def _scale_factor(low: float, high: float) -> float:
    if np.random.random() < 0.5 and low < 1:
        return float(np.random.uniform(low, 1))
    return float(np.random.uniform(max(low, 1), high))


def _rotate(coords: np.ndarray, angles: Sequence[float]) -> np.ndarray:
    """Rotate 3×… coordinates about axes 0, 1, 2 (batchgenerators' matrices and convention,
    applied as one 3×3 matrix product instead of a transposed dot)."""
    matrix = create_matrix_rotation_x_3d(angles[0], np.identity(3))
    matrix = create_matrix_rotation_y_3d(angles[1], matrix)
    matrix = create_matrix_rotation_z_3d(angles[2], matrix)
    return (matrix.T @ coords.reshape(3, -1)).reshape(coords.shape)


def draw_coordinates(shape: Sequence[int], params: SpatialParams) -> np.ndarray | None:
    """Zero-centred sampling offsets 3×shape of a random transform, or None (identity).

    Uses NumPy's global generator (seeded per loader worker).
    """
    coords: np.ndarray | None = None
    axis = params.in_plane_axis
    if params.p_elastic > 0 and np.random.uniform() < params.p_elastic:
        mesh = create_zero_centered_coordinate_mesh(tuple(shape))
        alpha = np.random.uniform(*ELASTIC_ALPHA)
        sigma = np.random.uniform(*ELASTIC_SIGMA)
        coords = elastic_deform_coordinates(mesh, alpha, sigma)
        if axis is not None:
            coords[axis] = mesh[axis]
    if params.p_rotation > 0 and np.random.uniform() < params.p_rotation:
        if coords is None:
            coords = create_zero_centered_coordinate_mesh(tuple(shape))
        angles = [np.random.uniform(-m, m) if m > 0 else 0.0 for m in params.max_radians]
        coords = _rotate(coords, angles)
    if params.p_scale > 0 and np.random.uniform() < params.p_scale:
        if coords is None:
            coords = create_zero_centered_coordinate_mesh(tuple(shape))
        factor = _scale_factor(*params.scale_range)
        for a in range(3):
            if a != axis:
                coords[a] *= factor
    return coords


def crop_padded(
    array: np.ndarray, start: Sequence[int] | np.ndarray, shape: Sequence[int] | np.ndarray
) -> np.ndarray:
    """The box ``[start, start + shape)`` of the last three axes of ``array``, zero-padded.

    Reads only the part inside the array (cheap on memory maps). Leading axes are kept.
    """
    out = np.zeros((*array.shape[:-3], *(int(n) for n in shape)), dtype=array.dtype)
    src: list[slice] = []
    dst: list[slice] = []
    for s, n, size in zip(start, shape, array.shape[-3:]):
        lo, hi = max(int(s), 0), min(int(s) + int(n), size)
        if hi <= lo:
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - int(s), hi - int(s)))
    out[(Ellipsis, dst[0], dst[1], dst[2])] = array[(Ellipsis, src[0], src[1], src[2])]
    return out


def read_patch(
    image: np.ndarray,
    seg: np.ndarray | None,
    start: Sequence[int],
    shape: Sequence[int],
    coords: np.ndarray | None,
    *,
    order: int = 1,
    seg_box: tuple[Sequence[int], Sequence[int]] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Image C×shape (float32) and labels (int16) of a patch, transformed by ``coords``.

    Args:
        image: C×Z×Y×X case image (memory-mapped).
        seg: Z×Y×X labels, or None.
        start: First voxel of the untransformed patch (may lie outside the image).
        shape: Patch shape (Z, Y, X).
        coords: Offsets from :func:`draw_coordinates`, or None for a plain crop.
        order: Spline order of the image interpolation.
        seg_box: ``(offset, shape)`` of the part of the patch whose labels are wanted
            (default: the whole patch).

    Returns:
        ``(image_patch, label_patch)``; labels None when ``seg`` is None.
    """
    if coords is None:
        data = crop_padded(image, start, shape).astype(np.float32, copy=False)
    else:
        data = np.stack(_interpolate(image, _absolute(start, shape, coords), order))
    if seg is None:
        return data, None
    return data, read_labels(seg, start, shape, coords, seg_box=seg_box)


def _absolute(start: Sequence[int], shape: Sequence[int], coords: np.ndarray) -> np.ndarray:
    centre = np.asarray(start, np.float64) + (np.asarray(shape, np.float64) - 1) / 2
    return coords + centre.reshape(3, 1, 1, 1)


def read_labels(
    seg: np.ndarray,
    start: Sequence[int],
    shape: Sequence[int],
    coords: np.ndarray | None,
    *,
    seg_box: tuple[Sequence[int], Sequence[int]] | None = None,
) -> np.ndarray:
    """The labels (int16) of a patch, transformed by ``coords`` as :func:`read_patch` does
    (also used for a second label map of the same patch: the cascade's first stage)."""
    offset, seg_shape = seg_box if seg_box is not None else ((0, 0, 0), shape)
    if coords is None:
        seg_start = [s + o for s, o in zip(start, offset)]
        return crop_padded(seg, seg_start, seg_shape).astype(np.int16)
    absolute = _absolute(start, shape, coords)
    (oz, oy, ox), (nz, ny, nx) = offset, seg_shape
    seg_points = absolute[:, oz : oz + nz, oy : oy + ny, ox : ox + nx]
    low, high = _bounds(seg_points)
    block = crop_padded(seg, low, high - low).astype(np.int16)
    local = seg_points - low.reshape(3, 1, 1, 1)
    labels = interpolate_img(block, local, 1, "constant", 0, is_seg=True)
    return labels.astype(np.int16, copy=False)


def _bounds(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer box (with a spline margin) holding every point of a 3×… coordinate array."""
    flat = points.reshape(3, -1)
    low = np.floor(flat.min(axis=1)).astype(int) - 2
    high = np.ceil(flat.max(axis=1)).astype(int) + 3
    return low, high


def _interpolate(image: np.ndarray, points: np.ndarray, order: int) -> list[np.ndarray]:
    """Each channel of ``image`` (C×Z×Y×X) at ``points`` (3×…), float32; the box read is
    zero-padded beyond the image and extended by nearest values beyond the box."""
    low, high = _bounds(points)
    block = crop_padded(image, low, high - low)
    local = (points - low.reshape(3, 1, 1, 1)).astype(np.float32)
    if order == 1:
        return list(_trilinear(np.asarray(block, np.float32), local))
    return [
        map_coordinates(
            np.asarray(channel, np.float32), local, output=np.float32, order=order, mode="nearest"
        )
        for channel in block
    ]


def _trilinear(block: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``map_coordinates(order=1, mode="nearest")`` of every channel of ``block`` (C×Z×Y×X)
    at ``points`` (3×…), with torch's ``grid_sample`` (2-3x faster on CPU, equal to 1e-4)."""
    sizes = np.asarray(block.shape[1:], np.float32).reshape(3, 1, 1, 1)
    normalised = 2.0 * points / np.maximum(sizes - 1, 1) - 1.0
    grid = torch.from_numpy(np.ascontiguousarray(normalised[::-1].transpose(1, 2, 3, 0)))
    sampled = torch.nn.functional.grid_sample(
        torch.from_numpy(block)[None],
        grid[None],
        mode="bilinear",
        padding_mode="border",
        align_corners=True,
    )
    return sampled[0].numpy()
