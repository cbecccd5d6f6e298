"""Separable interpolation kernels on the last three axes (Z, Y, X) of an array.

Coordinate convention ("voxel centres, outer faces aligned"; the one of
``skimage.transform.resize``, ``scipy.ndimage.zoom(grid_mode=True)`` and
``torch.nn.functional.interpolate(align_corners=False)``): resampling an axis of ``n_in``
voxels to ``n_out`` voxels makes output voxel ``o`` sample the input at the continuous index

    x = (o + 0.5) * n_in / n_out - 0.5

so the outer faces of the first and last voxels coincide, the physical extent is preserved
and the spacing scales by exactly ``n_in / n_out``. Resampling to a shape and back therefore
returns the original grid.

Interpolation is separable: one 1-D pass per axis, each a weighted sum of ``order + 1``
gathered slabs. Order 0 is nearest neighbour (ties round up), order 1 linear with the edge
voxel repeated beyond the border, orders 2-5 are B-splines (prefiltered with
``scipy.ndimage.spline_filter1d``) with a mirror boundary. This matches
``scipy.ndimage.zoom(..., grid_mode=True)`` (``mode="nearest"`` for order <= 1,
``mode="mirror"`` above) to float32 precision, at a fraction of its cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb, factorial

import numpy as np
from scipy import ndimage

__all__ = [
    "axis_taps",
    "output_range",
    "resample_axis",
    "resample_grid",
    "resample_separable",
    "resample_trilinear",
    "source_range",
]

Range = tuple[int, int]


def _source_coordinates(n_in: int, n_out: int, start: int, stop: int) -> np.ndarray:
    """Continuous input indices sampled by output voxels ``start..stop-1`` (float64)."""
    return (np.arange(start, stop, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5


def _bspline(t: np.ndarray, order: int) -> np.ndarray:
    """Centred cardinal B-spline of degree ``order`` evaluated at ``t``."""
    half = (order + 1) / 2.0
    total = np.zeros_like(t)
    for k in range(order + 2):
        total += (-1) ** k * comb(order + 1, k) * np.maximum(t + half - k, 0.0) ** order
    return total / factorial(order)


def _mirror(index: np.ndarray, n: int) -> np.ndarray:
    """Fold indices into ``[0, n)`` by whole-sample mirroring (``2 1 | 0 1 2 | 1 0``)."""
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    folded = np.abs(index) % period
    return np.where(folded > n - 1, period - folded, folded)


def axis_taps(
    n_in: int, n_out: int, order: int, start: int = 0, stop: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Input indices and weights that produce output voxels ``start..stop-1`` along one axis.

    Args:
        n_in: Input length along the axis (voxels, >= 1).
        n_out: Output length along the axis (voxels, >= 1).
        order: Interpolation order, 0 (nearest) to 5.
        start: First output index to compute.
        stop: One past the last output index (default ``n_out``).

    Returns:
        ``(indices, weights)``, each of shape ``(order + 1, stop - start)``: output voxel ``o``
        is ``sum_k weights[k, o] * input[indices[k, o]]``. Indices lie in ``[0, n_in)``.
        Orders >= 2 expect the input to be B-spline prefiltered along the axis.
    """
    if not 0 <= order <= 5:
        raise ValueError(f"interpolation order must be in 0..5, got {order=}")
    stop = n_out if stop is None else stop
    x = _source_coordinates(n_in, n_out, start, stop)
    if order == 0:
        index = np.clip(np.floor(x + 0.5).astype(np.intp), 0, n_in - 1)
        return index[None, :], np.ones((1, x.size), dtype=np.float32)
    if order == 1:
        low = np.floor(x)
        frac = (x - low).astype(np.float32)
        low_i = low.astype(np.intp)
        index = np.clip(np.stack([low_i, low_i + 1]), 0, n_in - 1)
        return index, np.stack([1.0 - frac, frac])
    first = np.floor(x + 0.5 if order % 2 == 0 else x).astype(np.intp) - order // 2
    raw = first[None, :] + np.arange(order + 1, dtype=np.intp)[:, None]
    weights = _bspline(x[None, :] - raw, order).astype(np.float32)
    return _mirror(raw, n_in), weights


def _block_axis(shape: Sequence[int], axis: int, itemsize: int, block_bytes: int) -> int:
    """The outermost axis other than ``axis`` whose single slices fit in ``block_bytes``."""
    total = int(np.prod(shape)) * itemsize
    candidates = [a for a in range(len(shape)) if a != axis]
    for candidate in candidates:
        if total // max(int(shape[candidate]), 1) <= block_bytes:
            return candidate
    return candidates[-1]


def resample_axis(
    array: np.ndarray,
    axis: int,
    indices: np.ndarray,
    weights: np.ndarray,
    *,
    block_bytes: int = 4 * 2**20,
) -> np.ndarray:
    """Apply the taps of :func:`axis_taps` along ``axis`` of ``array``.

    Work proceeds in blocks along another axis so that temporaries stay near
    ``block_bytes`` (bytes) instead of the size of the output.

    Returns:
        The array with ``axis`` replaced by the output voxels; the input dtype is kept for a
        single tap (nearest neighbour), float32 otherwise.
    """
    if indices.shape[0] == 1:
        return np.take(array, indices[0], axis=axis)
    out_shape = list(array.shape)
    out_shape[axis] = indices.shape[1]
    result = np.empty(out_shape, dtype=np.float32)
    weight_shape = [1] * array.ndim
    weight_shape[axis] = -1
    taps = [w.reshape(weight_shape) for w in weights]
    split = _block_axis(out_shape, axis, result.itemsize, block_bytes)
    row_bytes = result.nbytes // max(out_shape[split], 1)
    step = max(1, block_bytes // max(row_bytes, 1))
    for start in range(0, out_shape[split], step):
        block = (slice(None),) * split + (slice(start, start + step),)
        source, target = array[block], result[block]
        np.multiply(np.take(source, indices[0], axis=axis), taps[0], out=target)
        for k in range(1, indices.shape[0]):
            target += np.take(source, indices[k], axis=axis) * taps[k]
    return result


def source_range(
    n_in: int, n_out: int, order: int, start: int, stop: int, margin: int = 0
) -> Range:
    """Half-open input index range read when computing output voxels ``start..stop-1``.

    ``margin`` extra voxels are added on both sides (clipped to the axis), e.g. to give a
    B-spline prefilter room when only a crop of the input is filtered.
    """
    indices, _ = axis_taps(n_in, n_out, order, start, stop)
    return max(int(indices.min()) - margin, 0), min(int(indices.max()) + 1 + margin, n_in)


def output_range(n_in: int, n_out: int, low: int, high: int, support: float) -> Range:
    """Half-open output index range whose samples fall within ``support`` of input ``low..high-1``.

    Output voxel ``o`` is included when its source index ``x`` satisfies
    ``low - support < x < high - 1 + support``; values outside are treated as untouched by
    the input range ``[low, high)``.
    """
    scale = n_in / n_out
    first = int(np.floor((low - support + 0.5) / scale - 0.5)) + 1
    last = int(np.ceil((high - 1 + support + 0.5) / scale - 0.5))
    return max(first, 0), min(max(last, 0), n_out)


def resample_separable(
    array: np.ndarray,
    new_shape: Sequence[int],
    orders: Sequence[int],
    *,
    region: Sequence[Range] | None = None,
    offset: Sequence[int] = (0, 0, 0),
    full_shape: Sequence[int] | None = None,
) -> np.ndarray:
    """Resample the last three axes of ``array`` to ``new_shape``, one 1-D pass per axis.

    Args:
        array: Array of shape ``(..., Z, Y, X)``; leading axes (channels) are carried along.
        new_shape: Output grid (Z, Y, X) of the whole image.
        orders: Interpolation order per axis (Z, Y, X), 0..5.
        region: Output index ranges (start, stop) per axis to compute (default: everything).
        offset: When ``array`` is a crop, the index of its first voxel in the full input.
        full_shape: Spatial shape of the full input (default: ``array.shape[-3:]``).

    Returns:
        The output region, float32 (or the input dtype when every pass is nearest neighbour
        or an identity).

    Raises:
        ValueError: If the crop does not hold the input voxels the region needs.
    """
    full_shape = tuple(array.shape[-3:]) if full_shape is None else tuple(full_shape)
    region = [(0, int(n)) for n in new_shape] if region is None else list(region)
    lead = array.ndim - 3
    # Shrinking axes first keeps the intermediate arrays small.
    for axis in sorted(range(3), key=lambda a: new_shape[a] / full_shape[a]):
        n_in, n_out, order = int(full_shape[axis]), int(new_shape[axis]), int(orders[axis])
        start, stop = region[axis]
        if n_in == n_out:
            low, high = start - int(offset[axis]), stop - int(offset[axis])
            if low < 0 or high > array.shape[lead + axis]:
                raise ValueError(f"crop along axis {axis} does not cover output {start, stop}")
            array = array[(slice(None),) * (lead + axis) + (slice(low, high),)]
            continue
        indices, weights = axis_taps(n_in, n_out, order, start, stop)
        indices = indices - int(offset[axis])
        if indices.min() < 0 or indices.max() >= array.shape[lead + axis]:
            raise ValueError(
                f"crop along axis {axis} does not cover the taps of output {start, stop}"
            )
        if order >= 2:
            array = ndimage.spline_filter1d(
                array, order, axis=lead + axis, mode="mirror", output=np.float32
            )
        array = resample_axis(array, lead + axis, indices, weights)
    return array


def resample_trilinear(array: np.ndarray, new_shape: Sequence[int]) -> np.ndarray:
    """Linear resampling of the last three axes with ``torch.nn.functional.interpolate``.

    Same convention and result (to float32 rounding) as ``resample_separable(array,
    new_shape, (1, 1, 1))``, about 2.5 times faster (1.4 s against 3.6 s for a 300×512×512
    output on one CPU thread): torch's ``align_corners=False`` is this module's grid
    convention. Leading axes are flattened into channels.

    Returns:
        float32 array ``(..., *new_shape)``.
    """
    import torch  # heavy import, kept out of module import time

    lead = array.shape[:-3]
    flat = np.ascontiguousarray(array, dtype=np.float32).reshape(1, -1, *array.shape[-3:])
    if not flat.flags.writeable:  # e.g. a read-only memory map; torch wants writable memory
        flat = flat.copy()
    with torch.no_grad():
        tensor = torch.from_numpy(flat)
        out = torch.nn.functional.interpolate(
            tensor, size=tuple(int(n) for n in new_shape), mode="trilinear", align_corners=False
        )
    return out.numpy().reshape(*lead, *(int(n) for n in new_shape))


def resample_grid(array: np.ndarray, new_shape: Sequence[int], orders: Sequence[int]) -> np.ndarray:
    """Resample the whole grid: torch when every axis is linear, else :func:`resample_separable`."""
    if tuple(int(o) for o in orders) == (1, 1, 1) and tuple(array.shape[-3:]) != tuple(new_shape):
        return resample_trilinear(array, new_shape)
    return resample_separable(array, new_shape, orders)
