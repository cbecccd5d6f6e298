"""Crop to the non-zero bounding box and undo the crop.

Arrays are C×Z×Y×X or Z×Y×X; a box is one half-open ``(start, stop)`` pair per spatial axis
(Z, Y, X), plain Python ints so it can go into JSON as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

__all__ = [
    "Box",
    "box_shape",
    "crop_to_box",
    "mask_bounding_box",
    "nonzero_bounding_box",
    "nonzero_mask",
    "uncrop",
]

Box = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
"""Half-open (start, stop) voxel ranges along (Z, Y, X)."""


def _spatial(array: np.ndarray, name: str) -> tuple[int, int, int]:
    if array.ndim not in (3, 4):
        raise ValueError(f"{name} must be C×Z×Y×X or Z×Y×X, got shape {array.shape}")
    z, y, x = array.shape[-3:]
    return int(z), int(y), int(x)


def _any_nonzero(image: np.ndarray) -> np.ndarray:
    """Boolean Z×Y×X: voxels that are non-zero (NaN counts as non-zero) in any channel."""
    if image.ndim == 3:
        return image != 0
    mask = image[0] != 0
    for channel in image[1:]:
        mask |= channel != 0
    return mask


def mask_bounding_box(mask: np.ndarray) -> Box:
    """Bounding box of the True voxels of a mask Z×Y×X; the full box when none is True."""
    shape = _spatial(mask, "mask")
    spans = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(np.any(mask, axis=others))
        spans.append((int(hits[0]), int(hits[-1]) + 1) if hits.size else (0, shape[axis]))
    return spans[0], spans[1], spans[2]


def nonzero_bounding_box(image: np.ndarray, roi: np.ndarray | None = None) -> Box:
    """Box of the voxels that are non-zero in any channel, or of the ROI when one is given.

    Args:
        image: C×Z×Y×X (or Z×Y×X) intensities.
        roi: Optional Z×Y×X mask (non-zero = inside); when given, its box is returned.

    Returns:
        Half-open (start, stop) per axis (Z, Y, X). An all-zero image (or empty ROI) gives
        the full box, so nothing is ever cropped away by mistake.

    Example:
        >>> img = np.zeros((1, 4, 5, 6)); img[0, 1, 2:4, 3] = 1
        >>> nonzero_bounding_box(img)
        ((1, 2), (2, 4), (3, 4))
    """
    shape = _spatial(image, "image")
    if roi is not None:
        if tuple(roi.shape) != shape:
            raise ValueError(f"roi shape {roi.shape} differs from the image's {shape}")
        return mask_bounding_box(roi != 0)
    return mask_bounding_box(_any_nonzero(image))


def box_shape(box: Box) -> tuple[int, int, int]:
    """Shape (Z, Y, X) of the region a box selects."""
    return box[0][1] - box[0][0], box[1][1] - box[1][0], box[2][1] - box[2][0]


def _check_box(box: Sequence[Sequence[int]], shape: Sequence[int]) -> Box:
    if len(box) != 3:
        raise ValueError(f"box needs one (start, stop) per axis (Z, Y, X), got {box}")
    spans = tuple((int(a), int(b)) for a, b in box)
    for (start, stop), size in zip(spans, shape):
        if not 0 <= start < stop <= size:
            raise ValueError(f"box {spans} does not fit in shape {tuple(shape)}")
    return spans  # type: ignore[return-value]


def _slices(spans: Box) -> tuple[Any, ...]:
    """Index selecting a box on the last three axes of an array."""
    return (Ellipsis, *(slice(a, b) for a, b in spans))


def crop_to_box(array: np.ndarray, box: Sequence[Sequence[int]]) -> np.ndarray:
    """Crop the spatial axes of a C×Z×Y×X or Z×Y×X array to ``box`` (a view, not a copy)."""
    spans = _check_box(box, _spatial(array, "array"))
    return array[_slices(spans)]


def uncrop(
    array: np.ndarray,
    box: Sequence[Sequence[int]],
    full_shape: Sequence[int],
    fill: float | Sequence[float] = 0,
) -> np.ndarray:
    """Place a cropped array back into an array of spatial shape ``full_shape``.

    Args:
        array: Cropped C×Z×Y×X or Z×Y×X array; its spatial shape must equal the box's.
        box: The box it was cropped with.
        full_shape: Spatial shape (Z, Y, X) before cropping.
        fill: Value outside the box: a scalar, or one value per channel (for probability
            stacks, 1 for the background class and 0 for the others).

    Returns:
        Array of the same dtype and leading axes, spatial shape ``full_shape``.
    """
    full = tuple(int(v) for v in full_shape)
    spans = _check_box(box, full)
    if _spatial(array, "array") != box_shape(spans):
        raise ValueError(f"array shape {array.shape} does not match box {spans}")
    out = np.empty((*array.shape[:-3], *full), dtype=array.dtype)
    if np.ndim(fill) == 0:
        out.fill(fill)  # type: ignore[arg-type]
    else:
        values = np.asarray(fill, dtype=array.dtype)
        if array.ndim != 4 or values.shape != (array.shape[0],):
            raise ValueError(
                f"per-channel fill needs a C×Z×Y×X array and C values, got "
                f"shape {array.shape} and {fill=}"
            )
        out[...] = values.reshape(-1, 1, 1, 1)
    out[_slices(spans)] = array
    return out


def nonzero_mask(image: np.ndarray) -> np.ndarray:
    """Boolean Z×Y×X mask of voxels non-zero in any channel, with enclosed holes filled.

    This is the region per-case z-scoring uses (nnU-Net's "nonzero mask"): a brain MRI's
    skull-stripped foreground, say, including dark ventricles enclosed by it.
    """
    _spatial(image, "image")
    return np.asarray(ndimage.binary_fill_holes(_any_nonzero(image)), dtype=bool)
