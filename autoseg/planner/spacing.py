"""Target spacing and anisotropy rules.

The baseline is nnU-Net's reasoning: the median spacing keeps most cases near their native
resolution. When one axis is much coarser than the others *and* the median image has far
fewer voxels along it (thick-slice scans), resampling everything to the median would
interpolate across thick slices for the few fine cases and throw their detail away, so that
axis uses a lower percentile of the case spacings instead — but never finer than the
in-plane spacing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from autoseg.planner.heuristics import PlannerHeuristics
from autoseg.typing import Shape3, Spacing3

__all__ = ["coarse_axis", "is_strongly_anisotropic", "target_spacing"]


def target_spacing(
    spacings: Sequence[Spacing3],
    shapes_after_crop: Sequence[Shape3],
    heuristics: PlannerHeuristics,
) -> Spacing3:
    """The spacing (mm, Z/Y/X) every case is resampled to.

    Args:
        spacings: Original spacing of every training case.
        shapes_after_crop: Shape of every case after cropping to its non-zero region.
        heuristics: Supplies the percentiles, the anisotropy threshold and the voxel ratio.

    Returns:
        The target spacing.

    Raises:
        ValueError: if no spacings are given.
    """
    if not spacings:
        raise ValueError("target_spacing needs at least one case")
    spacing_array = np.asarray(spacings, dtype=np.float64)
    target = np.percentile(spacing_array, heuristics.spacing_percentile, axis=0)
    shape_array = np.asarray(shapes_after_crop, dtype=np.float64)
    # Median image size (in voxels) at the target spacing.
    sizes = np.median(shape_array * spacing_array, axis=0) / target
    worst = int(np.argmax(target))
    others = [axis for axis in range(3) if axis != worst]
    coarse_spacing = target[worst] > heuristics.anisotropy_threshold * target[others].max()
    few_voxels = sizes[worst] * heuristics.anisotropic_voxel_ratio < sizes[others].min()
    if coarse_spacing and few_voxels:
        lower = np.percentile(spacing_array[:, worst], heuristics.anisotropic_axis_percentile)
        target[worst] = max(float(lower), float(target[others].max()))
    return tuple(float(v) for v in target)  # type: ignore[return-value]


def coarse_axis(spacing: Spacing3, threshold: float) -> int | None:
    """The axis whose spacing exceeds ``threshold`` times the finest one, or None."""
    values = np.asarray(spacing, dtype=np.float64)
    worst = int(np.argmax(values))
    return worst if values[worst] > threshold * values.min() else None


def is_strongly_anisotropic(spacing: Spacing3, threshold: float) -> bool:
    """True when one axis is more than ``threshold`` times coarser than the finest."""
    return coarse_axis(spacing, threshold) is not None
