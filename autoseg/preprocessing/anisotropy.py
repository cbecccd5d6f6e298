"""Output grids and the anisotropy rule that picks an interpolation order per axis.

Spacings are in mm along (Z, Y, X); shapes are (Z, Y, X). The rule is the one nnU-Net uses,
written here from its description: when the current voxels, or else the target voxels, are
strongly anisotropic (largest / smallest spacing above a threshold; nnU-Net's default is 3)
and a single axis is the coarsest, that axis is resampled *separately* with a low order
(nearest or linear) while the in-plane axes keep the full order. Neighbouring thick slices
are barely correlated, so a cubic spline across them invents structure and rings; in-plane
the sampling is dense enough for it. With separable kernels, "in-plane per slice, then along
the coarse axis" is exactly a per-axis order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from autoseg.typing import Shape3, Spacing3

__all__ = [
    "axis_orders",
    "compute_new_shape",
    "is_anisotropic",
    "lowres_axis",
    "resolve_target",
    "separate_axis",
]


def _check_spacing(spacing: Sequence[float], name: str) -> Spacing3:
    values = tuple(float(v) for v in spacing)
    if len(values) != 3 or not all(np.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"{name} must be 3 positive finite values in mm (Z, Y, X), got {spacing}")
    return values  # type: ignore[return-value]


def compute_new_shape(
    shape: Sequence[int], spacing: Sequence[float], target_spacing: Sequence[float]
) -> Shape3:
    """Shape (Z, Y, X) that covers the same extent at ``target_spacing``.

    Each axis is ``shape * spacing / target_spacing`` rounded half up, and at least 1.

    Example:
        >>> compute_new_shape((10, 64, 64), (5.0, 0.7, 0.7), (5.0, 1.4, 1.4))
        (10, 32, 32)
    """
    spacing = _check_spacing(spacing, "spacing")
    target_spacing = _check_spacing(target_spacing, "target_spacing")
    if len(shape) != 3:
        raise ValueError(f"shape must have 3 axes (Z, Y, X), got {shape}")
    return tuple(  # type: ignore[return-value]
        max(int(np.floor(n * s / t + 0.5)), 1) for n, s, t in zip(shape, spacing, target_spacing)
    )


def resolve_target(
    shape: Sequence[int],
    spacing: Sequence[float],
    target_spacing: Sequence[float] | None,
    new_shape: Sequence[int] | None,
) -> tuple[Shape3, Spacing3]:
    """Complete (new_shape, target_spacing) from whichever is given (new_shape wins).

    Without ``target_spacing`` it is ``spacing * shape / new_shape`` (the grid convention).
    """
    spacing = _check_spacing(spacing, "spacing")
    if new_shape is None:
        if target_spacing is None:
            raise ValueError("give target_spacing or new_shape")
        return compute_new_shape(shape, spacing, target_spacing), _check_spacing(
            target_spacing, "target_spacing"
        )
    out = tuple(int(v) for v in new_shape)
    if len(out) != 3 or min(out) < 1:
        raise ValueError(f"new_shape must be 3 positive sizes (Z, Y, X), got {new_shape}")
    if target_spacing is None:
        target_spacing = tuple(s * n / m for s, n, m in zip(spacing, shape, out))
    return out, _check_spacing(target_spacing, "target_spacing")  # type: ignore[return-value]


def is_anisotropic(spacing: Sequence[float], threshold: float) -> bool:
    """True when the largest spacing exceeds ``threshold`` times the smallest."""
    values = _check_spacing(spacing, "spacing")
    return max(values) / min(values) > threshold


def lowres_axis(spacing: Sequence[float], *, rtol: float = 1e-3) -> int | None:
    """The single coarsest axis (0=Z, 1=Y, 2=X), or None when two or three axes tie.

    Axes within ``rtol`` (relative) of the largest spacing count as tied, e.g.
    (0.24, 1.25, 1.25) has two coarse axes and is resampled in 3-D, as nnU-Net does.
    """
    values = np.asarray(_check_spacing(spacing, "spacing"))
    coarse = np.flatnonzero(values >= values.max() * (1.0 - rtol))
    return int(coarse[0]) if coarse.size == 1 else None


def separate_axis(
    spacing: Sequence[float], target_spacing: Sequence[float], threshold: float
) -> int | None:
    """The axis to resample separately, or None for plain 3-D resampling.

    The current spacing decides first: if it is anisotropic (see :func:`is_anisotropic`),
    its coarsest axis is chosen; otherwise an anisotropic target spacing decides.
    """
    if is_anisotropic(spacing, threshold):
        return lowres_axis(spacing)
    if is_anisotropic(target_spacing, threshold):
        return lowres_axis(target_spacing)
    return None


def axis_orders(
    spacing: Sequence[float],
    target_spacing: Sequence[float],
    order: int,
    order_separate_axis: int,
    anisotropy_threshold: float,
) -> tuple[int, int, int]:
    """Interpolation order per axis (Z, Y, X) under the anisotropy rule."""
    orders = [order, order, order]
    axis = separate_axis(spacing, target_spacing, anisotropy_threshold)
    if axis is not None:
        orders[axis] = order_separate_axis
    return orders[0], orders[1], orders[2]
