"""Resample a label map without inventing label values.

Rule (argmax of interpolated one-hot masks): every label value's binary mask is interpolated
as float and each output voxel takes the value whose interpolated mask is largest. The most
frequent value (usually background) is never interpolated: because interpolation weights
sum to one, its score is ``1 - (sum of the other scores)``, and it wins only when strictly
larger than the best other score (so a half-covered voxel goes to the structure, which keeps
thin structures). The output therefore only holds values present in the input.

Each non-background value is interpolated only in its bounding box (found for all values in
one pass by ``scipy.ndimage.find_objects``) plus the kernel's reach, so the cost grows with
the volume the structures cover rather than with (number of labels × image size).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from autoseg.preprocessing.anisotropy import axis_orders, resolve_target
from autoseg.preprocessing.interpolation import output_range, resample_separable, source_range

__all__ = ["label_boxes", "resample_label"]

Box = tuple[slice, slice, slice]


def label_boxes(label: np.ndarray) -> tuple[int, dict[int, Box]]:
    """The most frequent value of an integer label map Z×Y×X and the box of every other value.

    Returns:
        ``(background, boxes)``: ties for most frequent go to the smaller value; ``boxes``
        maps each other present value to its bounding box (one slice per axis).
    """
    if label.dtype.kind == "b":
        label = label.view(np.uint8)
    if label.dtype.kind not in "iu":
        raise ValueError(f"label maps must hold integers, got dtype {label.dtype}")
    if label.size == 0:
        raise ValueError(f"label map is empty, shape {label.shape}")
    low, high = int(label.min()), int(label.max())
    if low >= 0 and high <= np.iinfo(np.int32).max and high < 4 * label.size + 256:
        counts = np.zeros(high + 1, dtype=np.int64)
        for slab in label:  # slab by slab: bincount would copy the whole map to intp
            counts += np.bincount(slab.ravel().astype(np.intp, copy=False), minlength=high + 1)
        values = np.flatnonzero(counts)
        index_map, index_of = label, {int(v): int(v) for v in values}
    else:
        uniques, inverse, counts_u = np.unique(label, return_inverse=True, return_counts=True)
        counts = np.zeros(uniques.size + 1, dtype=np.int64)
        counts[1:] = counts_u
        values = uniques
        index_map = inverse.reshape(label.shape).astype(np.int64) + 1
        index_of = {int(v): i + 1 for i, v in enumerate(uniques)}
    background = int(values[int(np.argmax([counts[index_of[int(v)]] for v in values]))])
    objects = ndimage.find_objects(index_map)
    boxes: dict[int, Box] = {}
    for value in (int(v) for v in values):
        if value == background:
            continue
        index = index_of[value]
        if index == 0:  # value 0 is invisible to find_objects
            boxes[value] = _mask_box(index_map == 0)
        else:
            boxes[value] = objects[index - 1]  # type: ignore[assignment]
    return background, boxes


def _mask_box(mask: np.ndarray) -> Box:
    """Bounding box of a non-empty boolean mask Z×Y×X."""
    spans = []
    for axis in range(3):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        spans.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return spans[0], spans[1], spans[2]


def _value_score(
    label: np.ndarray,
    value: int,
    box: Box,
    new_shape: tuple[int, int, int],
    orders: tuple[int, int, int],
    prefilter_margin: int,
) -> tuple[Box, np.ndarray] | None:
    """Interpolated mask of ``value`` over the output region its box can reach."""
    region, source = [], []
    for axis in range(3):
        n_in, n_out, order = label.shape[axis], new_shape[axis], orders[axis]
        reach = 1.0 if order <= 1 else (order + 1) / 2.0 + 1.0
        start, stop = output_range(n_in, n_out, box[axis].start, box[axis].stop, reach)
        if start >= stop:
            return None
        margin = prefilter_margin if order >= 2 and n_in != n_out else 0
        region.append((start, stop))
        source.append(source_range(n_in, n_out, order, start, stop, margin))
    crop = label[tuple(slice(a, b) for a, b in source)]
    mask = (crop == value).astype(np.float32)
    score = resample_separable(
        mask,
        new_shape,
        orders,
        region=region,
        offset=[a for a, _ in source],
        full_shape=label.shape,
    )
    out_box = tuple(slice(a, b) for a, b in region)
    return out_box, np.asarray(score, dtype=np.float32)  # type: ignore[return-value]


def _resample_one(
    label: np.ndarray,
    new_shape: tuple[int, int, int],
    orders: tuple[int, int, int],
    prefilter_margin: int,
) -> np.ndarray:
    """Argmax-of-one-hot resampling of a single label map Z×Y×X."""
    if max(orders) == 0:
        return np.asarray(resample_separable(label, new_shape, orders), dtype=label.dtype)
    background, boxes = label_boxes(label)
    out = np.full(new_shape, background, dtype=label.dtype)
    if not boxes:
        return out
    best = np.zeros(new_shape, dtype=np.float32)
    total = np.zeros(new_shape, dtype=np.float32)
    for value, box in boxes.items():
        result = _value_score(label, value, box, new_shape, orders, prefilter_margin)
        if result is None:
            continue
        out_box, score = result
        total[out_box] += score
        better = score > best[out_box]
        np.copyto(best[out_box], score, where=better)
        out[out_box][better] = value
    np.subtract(1.0, total, out=total)  # the background score
    out[best < total] = background
    return out


def resample_label(
    label: np.ndarray,
    spacing: Sequence[float],
    target_spacing: Sequence[float] | None,
    *,
    order: int = 1,
    order_separate_axis: int = 0,
    anisotropy_threshold: float = 3.0,
    new_shape: Sequence[int] | None = None,
    prefilter_margin: int = 8,
) -> np.ndarray:
    """Resample a label map Z×Y×X (or C×Z×Y×X) to ``target_spacing`` without new values.

    Args:
        label: Integer (or bool) label map.
        spacing: Current voxel spacing in mm (Z, Y, X).
        target_spacing: Wanted spacing in mm; may be None when ``new_shape`` is given.
        order: Order used to interpolate each value's one-hot mask (1: linear, nnU-Net's
            choice; 0: plain nearest neighbour; 2-5: B-splines).
        order_separate_axis: Order along a separately resampled coarse axis (see
            :mod:`autoseg.preprocessing.anisotropy`).
        anisotropy_threshold: Largest/smallest spacing ratio that triggers the separate axis.
        new_shape: Exact output shape (Z, Y, X); overrides the one computed from the spacing.
        prefilter_margin: Voxels of context kept around a value's box when a B-spline
            (order >= 2) is prefiltered on a crop; the truncation error decays like
            0.27**margin for cubic splines.

    Returns:
        Label map of the same dtype on the new grid; its values are a subset of the input's.
    """
    if label.ndim not in (3, 4):
        raise ValueError(f"label map must be Z×Y×X or C×Z×Y×X, got shape {label.shape}")
    shape = label.shape[-3:]
    out_shape, target = resolve_target(shape, spacing, target_spacing, new_shape)
    if tuple(shape) == out_shape:
        return np.array(label, copy=True)
    orders = axis_orders(spacing, target, order, order_separate_axis, anisotropy_threshold)
    if label.ndim == 3:
        return _resample_one(label, out_shape, orders, prefilter_margin)
    return np.stack([_resample_one(c, out_shape, orders, prefilter_margin) for c in label])
