"""U-Net topology: pooling and kernels per axis, patch aspect, and the shrink-to-fit search.

Pooling rule: at each stage, every axis whose feature map is still at least twice the
minimum edge and whose current spacing is within ``unet_pool_spacing_ratio`` of the finest
current spacing is pooled by 2 (so a much coarser axis is not pooled until the others have
caught up, and gets 1-kernels until then). A single remaining axis is pooled only while it
is at least three times the minimum edge. The bottleneck always uses 3x3x3 kernels.

The same rules plan the 2D U-Net on the two axes of its slice plane (``slice_axis``): its
patch is one voxel thick across the slices, and its batch range is its own
(``unet2d_min_batch_size`` / ``unet2d_max_batch_size``: 2D batches are much larger).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from autoseg.networks import UNetConfig
from autoseg.planner.heuristics import PlannerHeuristics
from autoseg.typing import Shape3, Spacing3

__all__ = [
    "ImageTooSmallError",
    "UNetChoice",
    "cpu_unet_widths",
    "initial_patch_size",
    "initial_slice_patch_size",
    "pooling_topology",
    "search_unet",
    "unet_config_for_patch",
    "unet_width",
]

Cost = Callable[[UNetConfig, Shape3, int], bool]
"""``fits(config, patch, batch) -> bool``: the memory (and compute) test of the search."""


Axes = tuple[int, ...]


class ImageTooSmallError(ValueError):
    """The median image cannot be pooled even once at ``unet_min_feature_map``: no memory
    or compute target would help, only a smaller minimum feature map."""


def pooling_topology(
    patch_size: Sequence[int], spacing: Sequence[float], heuristics: PlannerHeuristics
) -> tuple[tuple[Axes, ...], tuple[Axes, ...], Axes]:
    """Strides and kernels per stage for a patch, and the patch padded to their divisor.

    Works on any number of axes: three for the 3D U-Net, the slice plane's two for the 2D one.

    Returns:
        ``(strides, kernels, patch)``: strides per stage (stage 0 is all 1), kernel sizes per
        stage, and the patch rounded up to a multiple of the total stride per axis.
    """
    n = len(patch_size)
    size = [float(v) for v in patch_size]
    current = [float(v) for v in spacing]
    pools = [0] * n
    uses_3 = [False] * n
    strides: list[Axes] = [(1,) * n]
    kernels: list[Axes] = []
    min_edge = heuristics.unet_min_feature_map
    ratio = heuristics.unet_pool_spacing_ratio
    while True:
        axes = [
            a
            for a in range(n)
            if size[a] >= 2 * min_edge and pools[a] < heuristics.unet_max_pool_per_axis
        ]
        if not axes:
            break
        finest = min(current[a] for a in axes)
        axes = [a for a in axes if current[a] / finest < ratio]
        if len(axes) == 1 and size[axes[0]] < 3 * min_edge:
            break
        overall_finest = min(current)
        for a in range(n):
            uses_3[a] = uses_3[a] or current[a] / overall_finest < ratio
        kernels.append(tuple(3 if k else 1 for k in uses_3))
        strides.append(tuple(2 if a in axes else 1 for a in range(n)))
        for a in axes:
            pools[a] += 1
            current[a] *= 2
            size[a] = math.ceil(size[a] / 2)
    kernels.append((3,) * n)
    divisor = [2**p for p in pools]
    padded = tuple(int(math.ceil(p / d) * d) for p, d in zip(patch_size, divisor))
    return tuple(strides), tuple(kernels), padded


def unet_width(heuristics: PlannerHeuristics, *, on_cpu: bool) -> tuple[int, int]:
    """(stage-0 features, cap) of the U-Net the heuristics ask for on a CPU or a GPU."""
    if on_cpu:
        return heuristics.cpu_unet_base_features, heuristics.cpu_unet_max_features
    return heuristics.unet_base_features, heuristics.unet_max_features


def cpu_unet_widths(heuristics: PlannerHeuristics) -> tuple[tuple[int, int], ...]:
    """The CPU U-Net widths the planner may try, widest first: ``cpu_unet_base_features`` and
    ``cpu_unet_max_features``, both halved while the stage-0 width stays at least
    ``cpu_unet_min_base_features`` (only the first when ``cpu_unet_min_patch_coverage`` is 0)."""
    base, cap = unet_width(heuristics, on_cpu=True)
    widths = [(base, cap)]
    if heuristics.cpu_unet_min_patch_coverage > 0:
        while base // 2 >= heuristics.cpu_unet_min_base_features:
            base, cap = base // 2, max(base // 2, cap // 2)
            widths.append((base, cap))
    return tuple(widths)


def _drop(values: Sequence[Any], axis: int | None) -> tuple[Any, ...]:
    return tuple(v for a, v in enumerate(values) if a != axis)


def unet_config_for_patch(
    patch_size: Shape3,
    spacing: Spacing3,
    in_channels: int,
    num_classes: int,
    heuristics: PlannerHeuristics,
    *,
    on_cpu: bool,
    slice_axis: int | None = None,
    width: tuple[int, int] | None = None,
) -> tuple[UNetConfig, Shape3]:
    """The U-Net description for ``patch_size`` and the (divisor-padded) patch it takes.

    With ``slice_axis`` a 2D U-Net on the other two axes (the patch is 1 along it). ``width``
    is (stage-0 features, cap); None: the heuristics' for the device (:func:`unet_width`)."""
    strides, kernels, padded = pooling_topology(
        _drop(patch_size, slice_axis), _drop(spacing, slice_axis), heuristics
    )
    if len(strides) < 2:
        raise ValueError(f"patch {tuple(patch_size)} is too small to pool even once")
    if slice_axis is not None:
        padded = (*padded[:slice_axis], 1, *padded[slice_axis:])
    base, cap = width if width is not None else unet_width(heuristics, on_cpu=on_cpu)
    features = tuple(min(base * 2**stage, cap) for stage in range(len(strides)))
    config = UNetConfig(
        kind="unet3d" if slice_axis is None else "unet2d",
        slice_axis=slice_axis,
        in_channels=in_channels,
        num_classes=num_classes,
        features_per_stage=features,
        kernel_sizes=kernels,
        strides=strides,
        convs_per_stage=heuristics.unet_convs_per_stage,
        deep_supervision=True,
    )
    return config, padded  # type: ignore[return-value]


def initial_patch_size(
    target_spacing: Spacing3, median_shape: Shape3, heuristics: PlannerHeuristics
) -> Shape3:
    """Start of the search: ``unet_initial_patch_voxels`` shaped isotropic in mm, clipped to
    the median image shape (at target spacing)."""
    inverse = 1.0 / np.asarray(target_spacing, dtype=np.float64)
    scale = (heuristics.unet_initial_patch_voxels / np.prod(inverse)) ** (1.0 / 3.0)
    patch = np.round(inverse * scale).astype(int)
    return tuple(int(v) for v in np.maximum(np.minimum(patch, median_shape), 1))  # type: ignore[return-value]


def initial_slice_patch_size(
    target_spacing: Spacing3, median_shape: Shape3, slice_axis: int, heuristics: PlannerHeuristics
) -> Shape3:
    """Start of the 2D search: ``unet2d_initial_patch_pixels`` shaped isotropic in mm over the
    slice plane, clipped to the median slice; 1 across the slices."""
    inverse = 1.0 / np.asarray(_drop(target_spacing, slice_axis), dtype=np.float64)
    scale = (heuristics.unet2d_initial_patch_pixels / np.prod(inverse)) ** 0.5
    plane = np.round(inverse * scale).astype(int)
    plane = np.maximum(np.minimum(plane, _drop(median_shape, slice_axis)), 1)
    patch = [int(v) for v in plane]
    patch.insert(slice_axis, 1)
    return tuple(patch)  # type: ignore[return-value]


@dataclass(frozen=True)
class UNetChoice:
    """Result of the U-Net search."""

    config: UNetConfig
    patch_size: Shape3
    batch_size: int


def search_unet(
    target_spacing: Spacing3,
    median_shape: Shape3,
    dataset_voxels: int,
    in_channels: int,
    num_classes: int,
    heuristics: PlannerHeuristics,
    fits: Cost,
    *,
    on_cpu: bool,
    slice_axis: int | None = None,
    width: tuple[int, int] | None = None,
) -> UNetChoice:
    """Largest patch (then batch) that ``fits``, at ``width`` (see
    :func:`unet_config_for_patch`).

    With ``slice_axis`` the 2D U-Net on slices across that axis: the patch starts at
    :func:`initial_slice_patch_size` and the batch range is the 2D one.

    The patch starts at :func:`initial_patch_size`; while the minimum batch does not fit,
    the axis whose patch is largest relative to the median image shape shrinks by one
    stride divisor and the topology is recomputed. Then the batch grows while it fits,
    up to ``unet_max_batch_size`` and the dataset-fraction cap (batch x patch voxels at
    most ``unet_max_dataset_fraction`` of all voxels), never below the minimum batch.

    Raises:
        ImageTooSmallError: if the first patch cannot be pooled even once.
        ValueError: if not even the smallest patch fits (the target is too small).
    """
    if slice_axis is None:
        patch = initial_patch_size(target_spacing, median_shape, heuristics)
        min_batch, max_batch = heuristics.unet_min_batch_size, heuristics.unet_max_batch_size
    else:
        patch = initial_slice_patch_size(target_spacing, median_shape, slice_axis, heuristics)
        min_batch, max_batch = heuristics.unet2d_min_batch_size, heuristics.unet2d_max_batch_size
    first = patch
    while True:
        try:
            config, padded = unet_config_for_patch(
                patch,
                target_spacing,
                in_channels,
                num_classes,
                heuristics,
                on_cpu=on_cpu,
                slice_axis=slice_axis,
                width=width,
            )
        except ValueError:
            if patch == first:
                raise ImageTooSmallError(
                    f"the median image {tuple(median_shape)} (patch {patch}) is too small to "
                    f"pool even once with unet_min_feature_map {heuristics.unet_min_feature_map}"
                ) from None
            raise ValueError(
                f"no U-Net patch fits the memory/compute target (smallest tried {patch})"
            ) from None
        if fits(config, padded, min_batch):
            break
        divisor = np.prod(np.asarray(config.strides_3d()), axis=0)
        ratios = np.asarray(padded) / np.maximum(np.asarray(median_shape), 1)
        # Shrink the requested (unpadded) patch so the search always makes progress even
        # when a new topology pads another axis up.
        step = np.maximum(divisor, 1)
        shrinkable = [a for a in range(3) if patch[a] - step[a] >= heuristics.unet_min_feature_map]
        if not shrinkable:
            raise ValueError(
                f"no U-Net patch fits the memory/compute target (smallest tried {padded})"
            )
        axis = max(shrinkable, key=lambda a: (ratios[a], a))
        shrunk = list(patch)
        shrunk[axis] = int(patch[axis] - step[axis])
        patch = tuple(shrunk)  # type: ignore[assignment]
    patch_voxels = int(np.prod(padded))
    cap = max(min_batch, int(heuristics.unet_max_dataset_fraction * dataset_voxels // patch_voxels))
    batch = min_batch
    while batch < min(cap, max_batch) and fits(config, padded, batch + 1):
        batch += 1
    return UNetChoice(config=config, patch_size=padded, batch_size=batch)
