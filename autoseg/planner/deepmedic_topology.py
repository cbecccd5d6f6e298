"""DeepMedic topology for the data: anisotropy-aware kernels and subsampling, segment sizes.

Anisotropy: with ``r`` the ratio of an axis's spacing to the finest, a pathway of L layers
uses 3-kernels along that axis only in its last ``max(1, round(L / r))`` layers (all L
when the axis is within ``unet_pool_spacing_ratio`` of the finest), so the receptive field
covers a similar extent in mm along every axis. A subsampling factor ``f`` becomes
``max(1, round(f / r))`` along the axis (a 5 mm slice axis is not subsampled further).
Segment edges are given for the finest axis and scaled by ``1 / r`` along the others.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from autoseg.networks import DeepMedicConfig
from autoseg.networks.deepmedic_config import (
    PAPER_FEATURES,
    PAPER_RESIDUAL_AT,
    PathwayConfig,
    SubsampledPathwayConfig,
)
from autoseg.planner.heuristics import PlannerHeuristics
from autoseg.typing import Shape3, Spacing3

__all__ = ["DeepMedicChoice", "deepmedic_config_for", "search_deepmedic", "segment_for_edge"]

Triple = tuple[int, int, int]
Fits = Callable[[DeepMedicConfig, Shape3, int], bool]
"""``fits(config, output_segment, batch) -> bool``."""

PAPER_FC_FEATURES = (250, 250)


def _ratios(spacing: Spacing3) -> np.ndarray:
    values = np.asarray(spacing, dtype=np.float64)
    return values / values.min()


def _kernels(spacing: Spacing3, layers: int, heuristics: PlannerHeuristics) -> tuple[Triple, ...]:
    ratios = _ratios(spacing)
    with_3 = [
        layers if r < heuristics.unet_pool_spacing_ratio else max(1, round(layers / r))
        for r in ratios
    ]
    return tuple(
        tuple(3 if layer >= layers - n else 1 for n in with_3)  # type: ignore[misc]
        for layer in range(layers)
    )


def _scaled(features: tuple[int, ...], scale: float) -> tuple[int, ...]:
    return tuple(max(4, round(f * scale)) for f in features)


def deepmedic_config_for(
    spacing: Spacing3,
    in_channels: int,
    num_classes: int,
    heuristics: PlannerHeuristics,
    *,
    on_cpu: bool,
) -> DeepMedicConfig:
    """DeepMedic's paper layout adapted to the target spacing (see the module docstring)."""
    scale = heuristics.cpu_deepmedic_feature_scale if on_cpu else heuristics.deepmedic_feature_scale
    features = _scaled(PAPER_FEATURES, scale)
    layers = len(features)
    ratios = _ratios(spacing)
    normal = PathwayConfig(
        features=features,
        kernels=_kernels(spacing, layers, heuristics),
        residual_at=PAPER_RESIDUAL_AT,
    )
    subsampled, seen = [], set()
    for factor in heuristics.deepmedic_subsample_factors:
        per_axis: Triple = tuple(max(1, round(factor / r)) for r in ratios)  # type: ignore[assignment]
        if per_axis in seen or max(per_axis) == 1:
            continue
        seen.add(per_axis)
        grid = tuple(s * f for s, f in zip(spacing, per_axis))
        subsampled.append(
            SubsampledPathwayConfig(
                factor=per_axis,
                features=features,
                kernels=_kernels(grid, layers, heuristics),  # type: ignore[arg-type]
                residual_at=PAPER_RESIDUAL_AT,
            )
        )
    fc_kernel: Triple = tuple(  # type: ignore[assignment]
        3 if r < heuristics.anisotropy_threshold else 1 for r in ratios
    )
    return DeepMedicConfig(
        in_channels=in_channels,
        num_classes=num_classes,
        normal=normal,
        subsampled=tuple(subsampled),
        fc_features=_scaled(PAPER_FC_FEATURES, scale),
        fc_first_kernel=fc_kernel,
    )


def segment_for_edge(edge: int, spacing: Spacing3, limit: Shape3 | None = None) -> Shape3:
    """Output segment with ``edge`` voxels along the finest axis, scaled by spacing elsewhere,
    optionally clipped to ``limit`` (e.g. the median image shape)."""
    shape = np.maximum(np.round(edge / _ratios(spacing)), 1).astype(int)
    if limit is not None:
        shape = np.minimum(shape, np.maximum(np.asarray(limit), 1))
    return tuple(int(v) for v in shape)  # type: ignore[return-value]


def _on_lattice(segment: Shape3, config: DeepMedicConfig) -> Shape3:
    """Round an inference segment to the nearest multiple of every subsampling factor per
    axis (at least one step), so tiles of that size start on every pathway's grid and stitch
    seamlessly; the caller checks the rounded segment against the memory target."""
    lattice = [math.lcm(1, *(sub.factor[a] for sub in config.subsampled)) for a in range(3)]
    return tuple(  # type: ignore[return-value]
        max(step, math.floor(n / step + 0.5) * step) for n, step in zip(segment, lattice)
    )


@dataclass(frozen=True)
class DeepMedicChoice:
    """Result of the DeepMedic search."""

    train_segment: Shape3
    batch_size: int
    inference_segment: Shape3


def search_deepmedic(
    config: DeepMedicConfig,
    spacing: Spacing3,
    median_shape: Shape3,
    heuristics: PlannerHeuristics,
    fits_training: Fits,
    fits_inference: Callable[[DeepMedicConfig, Shape3], bool],
) -> DeepMedicChoice:
    """Largest training output segment (then batch) and inference segment that fit.

    The training segment edge shrinks from ``deepmedic_max_train_output`` until the minimum
    batch fits; the batch then grows while it fits, up to the maximum. The inference segment
    starts at ``deepmedic_inference_output`` (clipped to the median image) and shrinks until
    it fits.

    Raises:
        ValueError: if not even the smallest training segment fits.
    """
    h = heuristics
    edge = h.deepmedic_max_train_output
    while True:
        segment = segment_for_edge(edge, spacing, median_shape)
        if fits_training(config, segment, h.deepmedic_min_batch_size):
            break
        if edge <= h.deepmedic_min_train_output:
            raise ValueError(
                "no DeepMedic training segment fits the memory/compute target "
                f"(smallest tried {segment})"
            )
        edge = max(h.deepmedic_min_train_output, edge - 2)
    batch = h.deepmedic_min_batch_size
    while batch < h.deepmedic_max_batch_size and fits_training(config, segment, batch + 1):
        batch += 1
    inference_edge = max(h.deepmedic_inference_output, edge)
    while True:
        inference = _on_lattice(segment_for_edge(inference_edge, spacing, median_shape), config)
        if fits_inference(config, inference) or inference_edge <= edge:
            break
        inference_edge -= 2
    return DeepMedicChoice(train_segment=segment, batch_size=batch, inference_segment=inference)
