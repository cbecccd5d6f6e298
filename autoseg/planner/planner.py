"""``plan_dataset``: from a fingerprint, heuristics and a hardware target to :class:`Plans`.

Orchestration only: the rules live in spacing.py, unet_topology.py, deepmedic_topology.py,
memory.py and compute.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np

from autoseg.artefacts import text_digest
from autoseg.errors import PlansError
from autoseg.networks import DeepMedicConfig, UNetConfig
from autoseg.planner.compute import estimate_training_gflops
from autoseg.planner.deepmedic_topology import deepmedic_config_for, search_deepmedic
from autoseg.planner.fingerprint import Fingerprint
from autoseg.planner.heuristics import PlannerHeuristics
from autoseg.planner.memory import estimate_inference_memory, estimate_training_memory
from autoseg.planner.plans import (
    AugmentationPlan,
    ConfigurationPlan,
    HardwareTarget,
    Plans,
    network_family,
)
from autoseg.planner.spacing import coarse_axis, target_spacing
from autoseg.planner.unet_topology import search_unet
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

CONFIGURATIONS = ("unet3d", "deepmedic")


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


def _augmentation(spacing: Spacing3, heuristics: PlannerHeuristics) -> AugmentationPlan:
    axis = coarse_axis(spacing, heuristics.anisotropy_threshold)
    if axis is None:
        return AugmentationPlan()
    degrees = [0.0, 0.0, 0.0]
    degrees[axis] = 180.0  # rotate freely within the fine plane, never across thick slices
    return AugmentationPlan(rotation_degrees=tuple(degrees), rotate_in_plane_only=True)  # type: ignore[arg-type]


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
        PlansError: if no configuration fits the memory/compute target.
    """
    spacing = target_spacing(fingerprint.spacings, fingerprint.shapes_after_crop, heuristics)
    sizes = np.asarray(fingerprint.shapes_after_crop) * np.asarray(fingerprint.spacings) / spacing
    median_shape: Shape3 = tuple(round(v) for v in np.median(sizes, axis=0))  # type: ignore[assignment]
    dataset_voxels = int(np.sum(np.prod(sizes, axis=1)))
    normalization = normalization_for(fingerprint, heuristics, use_roi)
    classes = {v: f for v, f in fingerprint.class_voxel_fraction.items() if v != ignore_label}
    num_classes = max(v for v in fingerprint.labels.values() if v != ignore_label) + 1
    if regions_class_order is not None:
        num_classes = len(regions or {})  # one sigmoid output per region
    common = dict(
        data_identifier=_data_identifier(
            spacing, normalization, use_roi, heuristics.anisotropy_threshold
        ),
        target_spacing=spacing,
        augmentation=_augmentation(spacing, heuristics),
    )
    configurations = {
        "unet3d": _plan_unet(
            spacing,
            median_shape,
            dataset_voxels,
            len(normalization),
            num_classes,
            heuristics,
            hardware,
            common,
        ),
        "deepmedic": _plan_deepmedic(
            spacing, median_shape, len(normalization), num_classes, heuristics, hardware, common
        ),
    }
    return Plans(
        dataset_name=fingerprint.dataset_name,
        channel_names=fingerprint.channel_names,
        labels=dict(fingerprint.labels),
        regions=dict(regions or {}),
        normalization=normalization,
        use_roi_mask=use_roi,
        class_voxel_fraction=dict(fingerprint.class_voxel_fraction),
        class_sampling_weights=class_sampling_weights(classes, heuristics.class_weight_power),
        configurations=configurations,
        heuristics=heuristics,
        hardware=hardware,
        inputs=dict(inputs or {}),
        ignore_label=ignore_label,
        regions_class_order=regions_class_order,
    )


def precision_for(kind: str, hardware: HardwareTarget, heuristics: PlannerHeuristics) -> str:
    """ "amp" on a GPU; on a CPU "bf16" where it measured faster for the family, else "fp32"."""
    if hardware.device == "cuda":
        return "amp"
    if hardware.cpu_speed is None:
        return "fp32"
    return hardware.cpu_speed.fastest_precision(
        network_family(kind), heuristics.cpu_bf16_min_speedup
    )


def training_for(
    kind: str, hardware: HardwareTarget, heuristics: PlannerHeuristics
) -> tuple[str, float]:
    """The optimiser and learning rate a configuration trains with by default: the family's
    heuristics for the device planned for (``cpu_unet_optimizer`` / ``cpu_unet_lr`` on a CPU,
    ``unet_optimizer`` / ``unet_lr`` on a GPU; DeepMedic's likewise)."""
    family = "deepmedic" if network_family(kind) == "deepmedic" else "unet"
    prefix = "cpu_" if hardware.device == "cpu" else ""
    optimizer = getattr(heuristics, f"{prefix}{family}_optimizer")
    return str(optimizer), float(getattr(heuristics, f"{prefix}{family}_lr"))


def compute_budget_gflops(
    kind: str, precision: str, hardware: HardwareTarget, heuristics: PlannerHeuristics
) -> float | None:
    """GFLOP one training iteration may cost: on a CPU, its measured rate for the family and
    precision times ``cpu_seconds_per_iteration``; None (no compute limit) on a GPU."""
    if hardware.device == "cuda" or hardware.cpu_speed is None:
        return None
    rate = hardware.cpu_speed.rate(network_family(kind), precision)
    return rate * heuristics.cpu_seconds_per_iteration


def _budget(hardware: HardwareTarget, heuristics: PlannerHeuristics, kind: str):  # type: ignore[no-untyped-def]
    precision = precision_for(kind, hardware, heuristics)
    memory_limit = hardware.memory_target_bytes * heuristics.memory_safety_margin
    compute_limit = compute_budget_gflops(kind, precision, hardware, heuristics)

    def fits(config: UNetConfig | DeepMedicConfig, patch: Shape3, batch: int) -> bool:
        if estimate_training_memory(config, patch, batch, precision) > memory_limit:
            return False
        return (
            compute_limit is None or estimate_training_gflops(config, patch, batch) <= compute_limit
        )

    def fits_inference(config: UNetConfig | DeepMedicConfig, patch: Shape3) -> bool:
        return estimate_inference_memory(config, patch, 1, precision) <= memory_limit

    return fits, fits_inference, precision


def _configuration(
    name: str,
    network: UNetConfig | DeepMedicConfig,
    patch: Shape3,
    inference_patch: Shape3,
    batch: int,
    oversample: float,
    precision: str,
    training: tuple[str, float],
    common: dict,  # type: ignore[type-arg]
) -> ConfigurationPlan:
    return ConfigurationPlan(
        name=name,
        network=network,
        patch_size=patch,
        inference_patch_size=inference_patch,
        batch_size=batch,
        estimated_memory_bytes=estimate_training_memory(network, patch, batch, precision),
        estimated_inference_memory_bytes=estimate_inference_memory(
            network, inference_patch, 1, precision
        ),
        estimated_gflops_per_iteration=estimate_training_gflops(network, patch, batch),
        foreground_oversample=oversample,
        precision=precision,
        optimizer=training[0],
        lr=training[1],
        **common,
    )


def _plan_unet(
    spacing: Spacing3,
    median_shape: Shape3,
    dataset_voxels: int,
    channels: int,
    classes: int,
    heuristics: PlannerHeuristics,
    hardware: HardwareTarget,
    common: dict,  # type: ignore[type-arg]
) -> ConfigurationPlan:
    fits, _, precision = _budget(hardware, heuristics, "unet3d")
    on_cpu = hardware.device == "cpu"
    try:
        choice = search_unet(
            spacing,
            median_shape,
            dataset_voxels,
            channels,
            classes,
            heuristics,
            fits,
            on_cpu=on_cpu,
        )
    except ValueError as err:
        raise PlansError(f"unet3d: {err}; raise --gpu-memory or lower the heuristics") from None
    return _configuration(
        "unet3d",
        choice.config,
        choice.patch_size,
        choice.patch_size,
        choice.batch_size,
        heuristics.unet_foreground_oversample,
        precision,
        training_for("unet3d", hardware, heuristics),
        common,
    )


def _plan_deepmedic(
    spacing: Spacing3,
    median_shape: Shape3,
    channels: int,
    classes: int,
    heuristics: PlannerHeuristics,
    hardware: HardwareTarget,
    common: dict,  # type: ignore[type-arg]
) -> ConfigurationPlan:
    fits, fits_inference, precision = _budget(hardware, heuristics, "deepmedic")
    config = deepmedic_config_for(
        spacing, channels, classes, heuristics, on_cpu=hardware.device == "cpu"
    )
    try:
        choice = search_deepmedic(config, spacing, median_shape, heuristics, fits, fits_inference)
    except ValueError as err:
        raise PlansError(f"deepmedic: {err}; raise --gpu-memory or lower the heuristics") from None
    return _configuration(
        "deepmedic",
        config,
        choice.train_segment,
        choice.inference_segment,
        choice.batch_size,
        0.0,
        precision,
        training_for("deepmedic", hardware, heuristics),
        common,
    )
