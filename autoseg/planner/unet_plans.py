"""The U-Net configurations: ``unet3d``, ``unet2d``, ``unet3d_lowres`` and ``unet3d_cascade``.

- ``unet3d``: the full-resolution 3D U-Net (always planned).
- ``unet2d``: a 2D U-Net on slices across the coarsest axis of the target spacing (the first
  axis when no axis is coarser), on the same preprocessed data; always planned, as nnU-Net
  plans its ``2d`` for every dataset (on thick slices it often wins).
- ``unet3d_lowres``: when the ``unet3d`` patch covers less than ``lowres_patch_fraction`` of
  the median image, a 3D U-Net at a coarser spacing (grown by ``lowres_spacing_step``, the
  finer axes first, until its patch covers that fraction of the median image at that
  spacing), preprocessed separately; dropped when that would shrink the median image less
  than ``lowres_min_voxel_reduction`` times.
- ``unet3d_cascade``: with a low-resolution stage, the ``unet3d`` patch and batch with the
  stage's segmentation (one channel per foreground label) as extra input channels.

Each function returns the plan entry, or None with the reason in a
:class:`~autoseg.planner.decisions.PlanDecision`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from autoseg.errors import PlansError
from autoseg.networks import UNetConfig
from autoseg.planner.decisions import PlanDecision
from autoseg.planner.fitting import make_budget, make_configuration, training_for
from autoseg.planner.hardware_target import HardwareTarget
from autoseg.planner.heuristics import PlannerHeuristics
from autoseg.planner.plans import AugmentationPlan, ConfigurationPlan
from autoseg.planner.unet_topology import (
    ImageTooSmallError,
    UNetChoice,
    cpu_unet_widths,
    search_unet,
    unet_width,
)
from autoseg.typing import Shape3, Spacing3

__all__ = [
    "PlanningInput",
    "plan_cascade",
    "plan_lowres",
    "plan_unet2d",
    "plan_unet3d",
    "slice_axis_for",
]

_AXES = "ZYX"
_MAX_LOWRES_STEPS = 10_000


@dataclass(frozen=True)
class PlanningInput:
    """What every U-Net configuration is planned from.

    Attributes:
        spacing: The full-resolution target spacing (mm, Z/Y/X).
        median_shape: Median image shape at that spacing.
        dataset_voxels: Voxels of all cases at that spacing.
        channels: Image channels.
        classes: Network outputs (classes, or regions for region-based training).
        stage_channels: Foreground labels: the cascade's extra input channels.
        heuristics: The planner heuristics.
        hardware: The memory/compute target.
        common: Spacing -> the entries every configuration at that spacing shares
            (``data_identifier``, ``target_spacing``, ``augmentation``).
    """

    spacing: Spacing3
    median_shape: Shape3
    dataset_voxels: int
    channels: int
    classes: int
    stage_channels: int
    heuristics: PlannerHeuristics
    hardware: HardwareTarget
    common: Callable[[Spacing3], dict[str, Any]]


@dataclass(frozen=True)
class _Searched:
    """A U-Net search's outcome: the choice, its precision, and why its width is narrower
    than the heuristics' (empty when it is not)."""

    choice: UNetChoice
    precision: str
    width_note: str = ""


def _search(
    plan: PlanningInput,
    kind: str,
    spacing: Spacing3,
    median_shape: Shape3,
    dataset_voxels: int,
    channels: int,
    slice_axis: int | None = None,
    *,
    narrow: bool = True,
) -> _Searched:
    """The largest patch (then batch) that fits, at the widest width whose patch covers
    ``cpu_unet_min_patch_coverage`` of the median image (slice, in 2D) on a CPU when
    ``narrow`` (see :func:`~autoseg.planner.unet_topology.cpu_unet_widths`).

    Raises:
        ValueError: if no patch fits at any width.
    """
    h = plan.heuristics
    on_cpu = plan.hardware.device == "cpu"
    widths = cpu_unet_widths(h) if on_cpu and narrow else (unet_width(h, on_cpu=on_cpu),)
    seen = list(median_shape)
    if slice_axis is not None:
        seen[slice_axis] = 1
    budget = make_budget(plan.hardware, h, kind)
    tried: list[str] = []
    for index, width in enumerate(widths):
        last = index == len(widths) - 1
        try:
            choice = search_unet(
                spacing,
                median_shape,
                dataset_voxels,
                channels,
                plan.classes,
                h,
                budget.fits,
                on_cpu=on_cpu,
                slice_axis=slice_axis,
                width=width,
            )
        except ImageTooSmallError:
            raise  # no width helps
        except ValueError:
            if last:
                raise
            tried.append(f"at {width[0]}→{width[1]} no patch fits")
            continue
        covered = coverage(choice.patch_size, tuple(seen))  # type: ignore[arg-type]
        if covered >= h.cpu_unet_min_patch_coverage or last:
            where = "image" if slice_axis is None else "slice"
            note = (
                f"{width[0]}→{width[1]} features ({', '.join(tried)}: under "
                f"cpu_unet_min_patch_coverage {h.cpu_unet_min_patch_coverage:.0%} of the median "
                f"{where}; at least cpu_unet_min_base_features {h.cpu_unet_min_base_features})"
            )
            return _Searched(choice, budget.precision, note if tried else "")
        tried.append(f"at {width[0]}→{width[1]} the patch covered {covered:.0%}")
    raise AssertionError("unreachable: the last width returns or raises")  # pragma: no cover


def _entry(
    plan: PlanningInput,
    name: str,
    choice: UNetChoice,
    precision: str,
    common: dict[str, Any],
    **extra: Any,
) -> ConfigurationPlan:
    return make_configuration(
        name,
        choice.config,
        choice.patch_size,
        choice.patch_size,
        choice.batch_size,
        extra.pop("oversample"),
        precision,
        training_for(name, plan.hardware, plan.heuristics),
        common,
        **extra,
    )


def coverage(patch: Shape3, median_shape: Shape3 | np.ndarray) -> float:
    """Fraction of the median image's voxels one patch covers (at most 1)."""
    return min(1.0, math.prod(patch) / max(1.0, float(np.prod(median_shape))))


def _with_width(reason: str, searched: _Searched) -> str:
    return f"{reason}; {searched.width_note}" if searched.width_note else reason


def plan_unet3d(plan: PlanningInput) -> tuple[ConfigurationPlan, PlanDecision]:
    """The full-resolution 3D U-Net (always planned).

    Raises:
        PlansError: if no patch fits the target.
    """
    try:
        searched = _search(
            plan, "unet3d", plan.spacing, plan.median_shape, plan.dataset_voxels, plan.channels
        )
    except ImageTooSmallError as err:
        raise PlansError(f"unet3d: {err}; lower unet_min_feature_map") from None
    except ValueError as err:
        raise PlansError(f"unet3d: {err}; raise --gpu-memory or lower the heuristics") from None
    oversample = plan.heuristics.unet_foreground_oversample
    config = _entry(
        plan,
        "unet3d",
        searched.choice,
        searched.precision,
        plan.common(plan.spacing),
        oversample=oversample,
    )
    covered = coverage(config.patch_size, plan.median_shape)
    reason = f"always planned; its patch covers {covered:.0%} of the median image"
    return config, PlanDecision(True, _with_width(reason, searched))


def slice_axis_for(spacing: Spacing3) -> int:
    """The axis a 2D U-Net slices across: the coarsest, or the first when none is coarser
    (within 0.1 %)."""
    coarsest = max(spacing)
    return next(a for a, s in enumerate(spacing) if s >= coarsest * (1 - 1e-3))


def augmentation_2d(
    slice_axis: int, strength: float = 1.0, mirror_axes: Sequence[int] = (0, 1, 2)
) -> AugmentationPlan:
    """2D augmentation: rotation within the slice plane (any angle), scaling in 2D, mirroring
    along the in-plane axes among ``mirror_axes`` (those of the 3D plan), low-resolution
    simulation in-plane only; probabilities times ``strength`` (``augmentation_strength``)."""
    degrees = [0.0, 0.0, 0.0]
    degrees[slice_axis] = 180.0
    mirror = tuple(a for a in range(3) if a != slice_axis and a in mirror_axes)
    return AugmentationPlan(
        rotation_degrees=(degrees[0], degrees[1], degrees[2]),
        rotate_in_plane_only=True,
        mirror_axes=mirror,
    ).scaled(strength)


def plan_unet2d(plan: PlanningInput) -> tuple[ConfigurationPlan | None, PlanDecision]:
    """The 2D U-Net on slices across :func:`slice_axis_for` of the target spacing."""
    axis = slice_axis_for(plan.spacing)
    try:
        searched = _search(
            plan,
            "unet2d",
            plan.spacing,
            plan.median_shape,
            plan.dataset_voxels,
            plan.channels,
            slice_axis=axis,
        )
    except ValueError as err:
        return None, PlanDecision(False, f"no 2D patch fits the memory/compute target: {err}")
    common = plan.common(plan.spacing)
    mirror_axes = common["augmentation"].mirror_axes
    common["augmentation"] = augmentation_2d(
        axis, plan.heuristics.augmentation_strength, mirror_axes
    )
    oversample = plan.heuristics.unet_foreground_oversample
    config = _entry(
        plan,
        "unet2d",
        searched.choice,
        searched.precision,
        common,
        oversample=oversample,
        batch_dice=True,
    )
    spacing = "x".join(f"{s:.3g}" for s in plan.spacing)
    why = (
        f"the coarsest axis of the {spacing} mm spacing"
        if max(plan.spacing) > min(plan.spacing) * (1 + 1e-3)
        else "no axis is coarser, so the first"
    )
    reason = f"always planned (as nnU-Net's 2d); slices across {_AXES[axis]}, {why}"
    return config, PlanDecision(True, _with_width(reason, searched))


def _coarser(spacing: np.ndarray, step: float) -> np.ndarray:
    """One step of the low-resolution spacing: the axes more than 2x finer than the coarsest
    grow first, then all of them."""
    finer = spacing.max() / spacing > 2
    grown = spacing.copy()
    grown[finer if finer.any() else slice(None)] *= step
    return grown


def plan_lowres(
    plan: PlanningInput, fullres: ConfigurationPlan
) -> tuple[ConfigurationPlan | None, PlanDecision]:
    """The low-resolution 3D U-Net, when the full-resolution patch sees too little."""
    h = plan.heuristics
    covered = coverage(fullres.patch_size, plan.median_shape)
    if covered >= h.lowres_patch_fraction:
        return None, PlanDecision(
            False,
            f"the unet3d patch covers {covered:.0%} of the median image (at least "
            f"lowres_patch_fraction {h.lowres_patch_fraction:.0%})",
        )
    full = np.asarray(plan.spacing, dtype=np.float64)
    spacing = full.copy()
    for _ in range(_MAX_LOWRES_STEPS):
        spacing = _coarser(spacing, h.lowres_spacing_step)
        scale = full / spacing
        median = np.asarray(plan.median_shape, dtype=np.float64) * scale
        shape: Shape3 = tuple(max(1, round(v)) for v in median)  # type: ignore[assignment]
        target: Spacing3 = tuple(float(v) for v in spacing)  # type: ignore[assignment]
        voxels = int(plan.dataset_voxels * np.prod(scale))
        try:
            searched = _search(plan, "unet3d", target, shape, voxels, plan.channels, narrow=False)
            choice, precision = searched.choice, searched.precision
        except ValueError as err:
            return None, PlanDecision(False, f"no low-resolution patch fits: {err}")
        if coverage(choice.patch_size, median) >= h.lowres_patch_fraction:
            break
    else:  # pragma: no cover - the median image shrinks below any patch long before
        return None, PlanDecision(False, "the low-resolution search did not converge")
    reduction = float(np.prod(plan.median_shape) / max(1.0, float(np.prod(median))))
    text = "x".join(f"{s:.3g}" for s in target)
    if reduction < h.lowres_min_voxel_reduction:
        return None, PlanDecision(
            False,
            f"the unet3d patch covers {covered:.0%} of the median image, but a {text} mm "
            f"stage would have only {reduction:.2f}x fewer voxels (lowres_min_voxel_reduction "
            f"{h.lowres_min_voxel_reduction:g})",
        )
    oversample = h.unet_foreground_oversample
    config = _entry(
        plan, "unet3d_lowres", choice, precision, plan.common(target), oversample=oversample
    )
    return config, PlanDecision(
        True,
        f"the unet3d patch covers {covered:.0%} of the median image (less than "
        f"lowres_patch_fraction {h.lowres_patch_fraction:.0%}); at {text} mm "
        f"({reduction:.1f}x fewer voxels) the patch covers "
        f"{coverage(choice.patch_size, median):.0%}",
    )


def plan_cascade(
    plan: PlanningInput, fullres: ConfigurationPlan, lowres: ConfigurationPlan | None
) -> tuple[ConfigurationPlan | None, PlanDecision]:
    """The cascade's full-resolution stage: ``unet3d``'s patch and batch (searched again only
    if the extra channels no longer fit) on the image plus the low-resolution segmentation."""
    if lowres is None:
        return None, PlanDecision(False, "no low-resolution stage (unet3d_lowres) to build on")
    network = fullres.network
    assert isinstance(network, UNetConfig)
    channels = plan.channels + plan.stage_channels
    network = dataclasses.replace(network, in_channels=channels)
    budget = make_budget(plan.hardware, plan.heuristics, "unet3d")
    common = plan.common(plan.spacing)
    oversample = plan.heuristics.unet_foreground_oversample
    stage = {"oversample": oversample, "previous_stage": lowres.name, "batch_dice": True}
    if budget.fits(network, fullres.patch_size, fullres.batch_size):
        choice = UNetChoice(network, fullres.patch_size, fullres.batch_size)
    else:
        try:
            choice = _search(
                plan, "unet3d", plan.spacing, plan.median_shape, plan.dataset_voxels, channels
            ).choice
        except ValueError as err:
            return None, PlanDecision(False, f"no cascade patch fits: {err}")
    config = _entry(plan, "unet3d_cascade", choice, budget.precision, common, **stage)
    return config, PlanDecision(
        True,
        f"second stage of unet3d_lowres: the unet3d patch on the image and the low-resolution "
        f"segmentation ({plan.stage_channels} extra channel(s), one per foreground label)",
    )
