"""``plan_dataset``: from a fingerprint, heuristics and a hardware target to :class:`Plans`.

Orchestration only: the rules live in spacing.py, unet_plans.py (the U-Net configurations),
unet_topology.py, deepmedic_topology.py, fitting.py, memory.py and compute.py.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from autoseg.artefacts import text_digest
from autoseg.errors import PlansError
from autoseg.planner.decisions import CANDIDATES, PlanDecision
from autoseg.planner.deepmedic_topology import deepmedic_config_for, search_deepmedic
from autoseg.planner.fingerprint import Fingerprint
from autoseg.planner.fitting import (
    compute_budget_gflops,
    make_budget,
    make_configuration,
    precision_for,
    training_for,
)
from autoseg.planner.heuristics import PlannerHeuristics
from autoseg.planner.mirroring import ClassOrder, class_orders, mirror_axes_for
from autoseg.planner.plans import AugmentationPlan, ConfigurationPlan, HardwareTarget, Plans
from autoseg.planner.spacing import coarse_axis, target_spacing
from autoseg.planner.unet_plans import (
    PlanningInput,
    plan_cascade,
    plan_lowres,
    plan_unet2d,
    plan_unet3d,
)
from autoseg.preprocessing.normalize import ChannelNormalization, scheme_for_channel_name
from autoseg.typing import Shape3, Spacing3

__all__ = [
    "CONFIGURATIONS",
    "compute_budget_gflops",
    "normalization_for",
    "plan_dataset",
    "precision_for",
    "training_for",
]

CONFIGURATIONS = CANDIDATES
"""Every configuration the planner may plan (``plans.json`` says which it did, and why)."""


def normalization_for(
    fingerprint: Fingerprint, heuristics: PlannerHeuristics, use_roi: bool
) -> tuple[ChannelNormalization, ...]:
    """One scheme per channel from its name: CT -> dataset-wide clip + z-score; ``noNorm``
    -> none; ``rescale``/``rescale_to_0_1`` -> [0, 1]; anything else -> per-case z-score,
    inside the non-zero/ROI mask when cropping removes much of the image (or ROIs exist)."""
    use_mask = use_roi or fingerprint.median_crop_ratio <= heuristics.nonzero_mask_crop_ratio
    schemes = []
    for name, stats in zip(fingerprint.channel_names, fingerprint.per_channel):
        scheme = scheme_for_channel_name(name)
        if scheme == "ct":
            schemes.append(
                ChannelNormalization(
                    "ct",
                    False,
                    mean=stats.mean,
                    std=stats.std,
                    lower=stats.p00_5,
                    upper=stats.p99_5,
                )
            )
        else:
            schemes.append(ChannelNormalization(scheme, use_mask and scheme == "zscore"))
    return tuple(schemes)


def class_sampling_weights(fractions: Mapping[int, float], power: float) -> dict[int, float]:
    """Foreground class -> probability, proportional to frequency ** -power (absent: 0)."""
    raw = {v: (f**-power if f > 0 else 0.0) for v, f in fractions.items() if v != 0}
    total = sum(raw.values())
    return {v: (w / total if total > 0 else 0.0) for v, w in raw.items()}


def _augmentation(
    spacing: Spacing3, heuristics: PlannerHeuristics, orders: Sequence[ClassOrder]
) -> AugmentationPlan:
    axis = coarse_axis(spacing, heuristics.anisotropy_threshold)
    plan = AugmentationPlan(mirror_axes=mirror_axes_for((0, 1, 2), orders))
    if axis is not None:
        degrees = [0.0, 0.0, 0.0]
        degrees[axis] = 180.0  # rotate freely within the fine plane, never across thick slices
        plan = dataclasses.replace(
            plan,
            rotation_degrees=tuple(degrees),  # type: ignore[arg-type]
            rotate_in_plane_only=True,
        )
    return plan.scaled(heuristics.augmentation_strength)


def _data_identifier(
    spacing: Spacing3,
    normalization: tuple[ChannelNormalization, ...],
    use_roi: bool,
    anisotropy_threshold: float,
) -> str:
    """Names the preprocessed data: everything that changes it (spacing, normalisation, ROI
    use and the anisotropy rule of resampling) goes into the digest."""
    settings = json.dumps(
        [list(spacing), [n.to_dict() for n in normalization], use_roi, anisotropy_threshold]
    )
    return "sp_" + "x".join(f"{s:.3g}" for s in spacing) + "_" + text_digest(settings)[:8]


def plan_dataset(
    fingerprint: Fingerprint,
    heuristics: PlannerHeuristics,
    hardware: HardwareTarget,
    *,
    regions: Mapping[str, tuple[int, ...]] | None = None,
    use_roi: bool = False,
    inputs: Mapping[str, str] | None = None,
    ignore_label: int | None = None,
    regions_class_order: tuple[int, ...] | None = None,
) -> Plans:
    """Decide preprocessing and every configuration for this dataset and hardware.

    Args:
        fingerprint: The dataset fingerprint.
        heuristics: The planner heuristics.
        hardware: The memory/compute target.
        regions: Region name -> label values, in order.
        use_roi: Cases carry ROI masks.
        inputs: Digests recorded in the plan.
        ignore_label: The ignore label (no class: no output, no sampling weight).
        regions_class_order: Region-based training: the networks get one output per region.

    Raises:
        PlansError: if unet3d or deepmedic fits no memory/compute target.
    """
    spacing = target_spacing(fingerprint.spacings, fingerprint.shapes_after_crop, heuristics)
    sizes = np.asarray(fingerprint.shapes_after_crop) * np.asarray(fingerprint.spacings) / spacing
    median_shape: Shape3 = tuple(round(v) for v in np.median(sizes, axis=0))  # type: ignore[assignment]
    normalization = normalization_for(fingerprint, heuristics, use_roi)
    ignored = () if ignore_label is None else (ignore_label,)
    orders = class_orders(fingerprint.cases, heuristics, ignore=ignored)
    classes = {v: f for v, f in fingerprint.class_voxel_fraction.items() if v != ignore_label}
    num_classes = max(v for v in fingerprint.labels.values() if v != ignore_label) + 1
    if regions_class_order is not None:
        num_classes = len(regions or {})  # one sigmoid output per region

    def common(at: Spacing3) -> dict[str, Any]:
        identifier = _data_identifier(at, normalization, use_roi, heuristics.anisotropy_threshold)
        return dict(
            data_identifier=identifier,
            target_spacing=at,
            augmentation=_augmentation(at, heuristics, orders),
        )

    unets = PlanningInput(
        spacing=spacing,
        median_shape=median_shape,
        dataset_voxels=int(np.sum(np.prod(sizes, axis=1))),
        channels=len(normalization),
        classes=num_classes,
        stage_channels=len(set(fingerprint.labels.values()) - {0, ignore_label}),
        heuristics=heuristics,
        hardware=hardware,
        common=common,
    )
    configurations, decisions = _plan_configurations(unets)
    configurations["deepmedic"] = _plan_deepmedic(
        spacing,
        median_shape,
        len(normalization),
        num_classes,
        heuristics,
        hardware,
        common(spacing),
    )
    decisions["deepmedic"] = PlanDecision(True, "always planned")
    return Plans(
        dataset_name=fingerprint.dataset_name,
        channel_names=fingerprint.channel_names,
        labels=dict(fingerprint.labels),
        regions=dict(regions or {}),
        normalization=normalization,
        use_roi_mask=use_roi,
        class_voxel_fraction=dict(fingerprint.class_voxel_fraction),
        class_sampling_weights=class_sampling_weights(classes, heuristics.class_weight_power),
        configurations={k: configurations[k] for k in CANDIDATES if k in configurations},
        heuristics=heuristics,
        hardware=hardware,
        inputs=dict(inputs or {}),
        ignore_label=ignore_label,
        regions_class_order=regions_class_order,
        decisions={k: decisions[k] for k in CANDIDATES},
    )


def _plan_configurations(
    unets: PlanningInput,
) -> tuple[dict[str, ConfigurationPlan], dict[str, PlanDecision]]:
    """The U-Net configurations and the decision on each."""
    fullres, unet3d = plan_unet3d(unets)
    decisions = {"unet3d": unet3d}
    unet2d, decisions["unet2d"] = plan_unet2d(unets)
    lowres, decisions["unet3d_lowres"] = plan_lowres(unets, fullres)
    cascade, decisions["unet3d_cascade"] = plan_cascade(unets, fullres, lowres)
    if lowres is not None:  # nnU-Net's rule: small patches of large images, Dice per batch
        fullres = dataclasses.replace(fullres, batch_dice=True)
    configurations = {"unet3d": fullres}
    for config in (unet2d, lowres, cascade):
        if config is not None:
            configurations[config.name] = config
    return configurations, decisions


def _plan_deepmedic(
    spacing: Spacing3,
    median_shape: Shape3,
    channels: int,
    classes: int,
    heuristics: PlannerHeuristics,
    hardware: HardwareTarget,
    common: dict,  # type: ignore[type-arg]
) -> ConfigurationPlan:
    budget = make_budget(hardware, heuristics, "deepmedic")
    config = deepmedic_config_for(
        spacing, channels, classes, heuristics, on_cpu=hardware.device == "cpu"
    )
    try:
        choice = search_deepmedic(
            config, spacing, median_shape, heuristics, budget.fits, budget.fits_inference
        )
    except ValueError as err:
        raise PlansError(f"deepmedic: {err}; raise --gpu-memory or lower the heuristics") from None
    return make_configuration(
        "deepmedic",
        config,
        choice.train_segment,
        choice.inference_segment,
        choice.batch_size,
        0.0,
        budget.precision,
        training_for("deepmedic", hardware, heuristics),
        common,
    )
