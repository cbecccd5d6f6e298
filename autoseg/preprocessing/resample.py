"""Resample images, label maps and probability maps to a target spacing, anisotropy-aware.

Arrays are C×Z×Y×X (label maps Z×Y×X, probabilities K×Z×Y×X); spacings are in mm along
(Z, Y, X). Grid convention: "voxel centres, outer faces aligned" (see
:mod:`autoseg.preprocessing.interpolation`), so resampling to a shape and back returns the
original grid and the result's spacing is exactly ``spacing * shape / new_shape``. The
per-axis orders follow the anisotropy rule of :mod:`autoseg.preprocessing.anisotropy`.

Every function takes either ``target_spacing`` or an exact ``new_shape`` (export must land
on the original cropped shape, not on a rounded recomputation).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from autoseg.preprocessing.anisotropy import (
    axis_orders,
    compute_new_shape,
    is_anisotropic,
    lowres_axis,
    resolve_target,
    separate_axis,
)
from autoseg.preprocessing.interpolation import resample_grid
from autoseg.preprocessing.label_resampling import resample_label

__all__ = [
    "axis_orders",
    "compute_new_shape",
    "is_anisotropic",
    "lowres_axis",
    "resample_image",
    "resample_label",
    "resample_probabilities",
    "resample_probabilities_to_labels",
    "resolve_target",
    "separate_axis",
]


def resample_image(
    image: np.ndarray,
    spacing: Sequence[float],
    target_spacing: Sequence[float] | None,
    *,
    order: int = 3,
    order_separate_axis: int = 0,
    anisotropy_threshold: float = 3.0,
    new_shape: Sequence[int] | None = None,
) -> np.ndarray:
    """Resample an image C×Z×Y×X (or Z×Y×X) to ``target_spacing`` (or exactly ``new_shape``).

    Args:
        image: Intensities, any real dtype.
        spacing: Current voxel spacing in mm (Z, Y, X).
        target_spacing: Wanted spacing in mm (Z, Y, X); may be None when ``new_shape`` is given.
        order: Interpolation order 0-5 (3: cubic B-spline, nnU-Net's choice for images).
        order_separate_axis: Order along a separately resampled coarse axis (0 nearest, 1 linear).
        anisotropy_threshold: Largest/smallest spacing ratio above which the coarse axis is
            resampled separately (the planner's ``anisotropy_threshold``).
        new_shape: Exact output shape (Z, Y, X); overrides the one computed from the spacing.

    Returns:
        float32 array with the same leading axes and the new spatial shape. Channels are
        resampled one at a time so peak memory stays near one input plus one output channel.
    """
    if image.ndim not in (3, 4):
        raise ValueError(f"image must be C×Z×Y×X or Z×Y×X, got shape {image.shape}")
    shape = image.shape[-3:]
    new_shape, target = resolve_target(shape, spacing, target_spacing, new_shape)
    if tuple(shape) == new_shape:
        return np.array(image, dtype=np.float32, copy=True)
    orders = axis_orders(spacing, target, order, order_separate_axis, anisotropy_threshold)
    if image.ndim == 3:
        return np.asarray(resample_grid(image, new_shape, orders), dtype=np.float32)
    out = np.empty((image.shape[0], *new_shape), dtype=np.float32)
    for channel in range(image.shape[0]):
        out[channel] = resample_grid(image[channel], new_shape, orders)
    return out


def _plan_probabilities(
    probs: np.ndarray,
    current_spacing: Sequence[float],
    target_spacing: Sequence[float] | None,
    new_shape: Sequence[int] | None,
    orders_args: tuple[int, int, float],
    chunk_classes: int,
) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Validate the arguments; return (output shape, order per axis)."""
    if probs.ndim != 4 or probs.shape[0] < 1:
        raise ValueError(f"probabilities must be K×Z×Y×X with K >= 1, got shape {probs.shape}")
    if chunk_classes < 1:
        raise ValueError(f"chunk_classes must be >= 1, got {chunk_classes=}")
    out_shape, target = resolve_target(probs.shape[1:], current_spacing, target_spacing, new_shape)
    return out_shape, axis_orders(current_spacing, target, *orders_args)


def _class_chunks(
    probs: np.ndarray, out_shape: tuple[int, int, int], orders: tuple[int, int, int], size: int
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first class, float32 chunk of ``size`` classes on the output grid)."""
    for first in range(0, probs.shape[0], size):
        chunk = np.asarray(probs[first : first + size], dtype=np.float32)
        if tuple(probs.shape[1:]) == out_shape:
            yield first, chunk
        else:
            yield first, np.asarray(resample_grid(chunk, out_shape, orders), np.float32)


def resample_probabilities(
    probs: np.ndarray,
    current_spacing: Sequence[float],
    target_spacing: Sequence[float] | None = None,
    *,
    new_shape: Sequence[int] | None = None,
    order: int = 1,
    order_separate_axis: int = 0,
    anisotropy_threshold: float = 3.0,
    chunk_classes: int = 1,
) -> np.ndarray:
    """Resample class probabilities K×Z×Y×X, ``chunk_classes`` classes at a time.

    Args:
        probs: Probabilities (or logits), any float dtype.
        current_spacing: Spacing of ``probs`` in mm (Z, Y, X).
        target_spacing: Wanted spacing in mm; may be None when ``new_shape`` is given.
        new_shape: Exact output shape (Z, Y, X), e.g. the cropped original shape on export.
        order: Interpolation order (1: linear, the default for probabilities).
        order_separate_axis: Order along a separately resampled coarse axis.
        anisotropy_threshold: See :func:`resample_image`.
        chunk_classes: Classes resampled together; peak memory is the input, the K×output
            result and about two chunk-sized temporaries.

    Returns:
        float32 array K×new_shape.
    """
    out_shape, orders = _plan_probabilities(
        probs,
        current_spacing,
        target_spacing,
        new_shape,
        (order, order_separate_axis, anisotropy_threshold),
        chunk_classes,
    )
    out = np.empty((probs.shape[0], *out_shape), dtype=np.float32)
    for first, chunk in _class_chunks(probs, out_shape, orders, chunk_classes):
        out[first : first + chunk.shape[0]] = chunk
    return out


def resample_probabilities_to_labels(
    probs: np.ndarray,
    current_spacing: Sequence[float],
    target_spacing: Sequence[float] | None = None,
    *,
    new_shape: Sequence[int] | None = None,
    order: int = 1,
    order_separate_axis: int = 0,
    anisotropy_threshold: float = 3.0,
    chunk_classes: int = 1,
) -> np.ndarray:
    """Argmax over classes of the resampled probabilities, without the K×output stack.

    Same arguments as :func:`resample_probabilities`. Classes are resampled chunk by chunk
    while a running maximum and its class index are kept (ties go to the lower class, as in
    ``np.argmax``), so peak memory is the input plus about five output-sized float32 arrays
    (with ``chunk_classes=1``; measured 4.5) whatever K is. The result equals
    ``resample_probabilities(...).argmax(0)`` exactly.

    Returns:
        Class indices Z×Y×X: uint8 for K <= 256, else int32.
    """
    out_shape, orders = _plan_probabilities(
        probs,
        current_spacing,
        target_spacing,
        new_shape,
        (order, order_separate_axis, anisotropy_threshold),
        chunk_classes,
    )
    labels = np.zeros(out_shape, dtype=np.uint8 if probs.shape[0] <= 256 else np.int32)
    best = np.full(out_shape, -np.inf, dtype=np.float32)
    for first, chunk in _class_chunks(probs, out_shape, orders, chunk_classes):
        for j in range(chunk.shape[0]):
            better = chunk[j] > best
            np.copyto(best, chunk[j], where=better)
            labels[better] = first + j
    return labels
