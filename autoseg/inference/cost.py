"""What predicting a case costs: network passes (models x mirrors x windows) and, on a CPU,
an estimate of the seconds, printed by ``autoseg predict`` before it starts.

The passes follow the one window-count rule of inference (sliding-window windows for the
U-Net, :func:`~autoseg.inference.deepmedic_tiling.tile_starts` of the balanced tile for
DeepMedic). The seconds are the passes' analytic forward compute
(:func:`autoseg.planner.compute.estimate_forward_gflops`) at the training speed measured on
the CPU the plan was made on; reading, preprocessing and export come on top. The same
estimate decides whether mirroring is on by default on a CPU (:func:`default_mirroring`), in
``autoseg predict`` and in a fold's final validation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from autoseg.inference.deepmedic_tiling import (
    balanced_tile,
    fc_margin,
    tile_lattice,
    tile_output_shape,
    tile_starts,
)
from autoseg.inference.sliding_window import windows_along
from autoseg.networks import DeepMedicConfig
from autoseg.planner.compute import estimate_forward_gflops
from autoseg.planner.plans import ConfigurationPlan, Plans, network_family
from autoseg.precision import use_autocast

__all__ = [
    "CPU_MIRRORING_SECONDS",
    "ConfigurationCost",
    "PredictionCost",
    "default_mirroring",
    "estimate_prediction_cost",
    "estimate_resampled_cost",
    "network_windows",
]

CPU_MIRRORING_SECONDS = 2.0
"""On a CPU, test-time mirroring is on by default when the network time of a case with it is
estimated at this many seconds or less. Mirroring costs 2-8x the passes for +0.001 to +0.005
Dice on Hippocampus validation folds (bench/RESULTS.md), worth it while a case stays within
seconds: a Hippocampus case with 5 folds x 2 mirrors is estimated at ~0.3 s on the 2-core
CPU of those runs; a 512x512x300 CT with the same plan at ~27 minutes, which is not mirrored
unless ``--tta`` asks."""


@dataclass(frozen=True)
class ConfigurationCost:
    """One configuration's share: its models (folds), mirrors and windows per case."""

    name: str
    models: int
    mirrors: int
    windows: int
    gflops_per_window: float

    @property
    def passes(self) -> int:
        return self.models * self.mirrors * self.windows


@dataclass(frozen=True)
class PredictionCost:
    """Network passes per case and, on a CPU with a measured speed, their seconds."""

    configurations: tuple[ConfigurationCost, ...]
    seconds: float | None

    @property
    def passes(self) -> int:
        return sum(c.passes for c in self.configurations)

    def describe(self) -> str:
        """e.g. ``unet3d 5 folds x 1 mirror x 1 window = 5 network passes per case``."""
        parts = [
            f"{c.name} {c.models} fold(s) x {c.mirrors} mirror(s) x {c.windows} window(s)"
            for c in self.configurations
        ]
        text = f"{' + '.join(parts)} = {self.passes} network passes per case"
        if self.seconds is not None:
            text += f", ~{self.seconds:.1f} s of network time per case on this CPU"
        return text


def network_windows(plan: ConfigurationPlan, shape: Sequence[int], step_fraction: float) -> int:
    """Windows (U-Net) or tiles (DeepMedic) one pass over a volume of ``shape`` computes."""
    config = plan.network
    if isinstance(config, DeepMedicConfig):
        tile = tile_output_shape(config, plan.inference_patch_size)
        tile = balanced_tile(shape, tile, tile_lattice(config))
        return len(tile_starts(shape, tile))
    patch = plan.inference_patch_size
    return math.prod(windows_along(max(int(s), p), p, step_fraction) for s, p in zip(shape, patch))


def _window_gflops(plan: ConfigurationPlan) -> float:
    config = plan.network
    if isinstance(config, DeepMedicConfig):
        tile = tile_output_shape(config, plan.inference_patch_size)
        margin = fc_margin(config)
        request = tuple(t + 2 * m for t, m in zip(tile, margin))
        return estimate_forward_gflops(config, request)
    return estimate_forward_gflops(config, plan.inference_patch_size)


def estimate_prediction_cost(
    plans: Plans,
    folds: Mapping[str, int],
    original_shape: Sequence[int],
    original_spacing: Sequence[float],
    *,
    mirroring: bool,
    step_fraction: float,
    on_cpu: bool,
    stages: Mapping[str, int] | None = None,
) -> PredictionCost:
    """The cost of predicting a case of ``original_shape`` (Z, Y, X) at ``original_spacing``.

    Args:
        plans: The model's plans.
        folds: Configuration -> number of its models (folds) that will run.
        mirroring: Test-time mirroring along the plan's mirror axes.
        step_fraction: The sliding window's step.
        on_cpu: Estimate seconds (from the plan's measured CPU speed, when it has one).
        stages: The first stages of cascades -> their models, run before the cascade
            (listed as ``<stage> (first stage)``).
    """
    labelled = [(name, name, models) for name, models in folds.items()]
    labelled += [(f"{name} (first stage)", name, n) for name, n in (stages or {}).items()]
    runs = []
    for label, name, models in labelled:
        plan = plans.configuration(name)
        shape = [
            max(1, round(n * s / t))
            for n, s, t in zip(original_shape, original_spacing, plan.target_spacing)
        ]
        runs.append((label, plan, models, shape))
    return _cost(plans, runs, mirroring, step_fraction, on_cpu)


def estimate_resampled_cost(
    plans: Plans,
    config_name: str,
    shape: Sequence[int],
    *,
    mirroring: bool,
    step_fraction: float,
) -> PredictionCost:
    """The cost on a CPU of one model of ``config_name`` on a case already on its grid
    (``shape``: Z, Y, X at the plan's target spacing), as in a fold's final validation."""
    plan = plans.configuration(config_name)
    return _cost(plans, [(config_name, plan, 1, shape)], mirroring, step_fraction, True)


def _cost(
    plans: Plans,
    runs: Sequence[tuple[str, ConfigurationPlan, int, Sequence[int]]],
    mirroring: bool,
    step_fraction: float,
    on_cpu: bool,
) -> PredictionCost:
    """``runs``: (label, plan, models, shape on the plan's grid) per configuration."""
    costs = []
    seconds: float | None = 0.0
    speed = plans.hardware.cpu_speed
    for label, plan, models, shape in runs:
        mirrors = 2 ** len(plan.augmentation.mirror_axes) if mirroring else 1
        cost = ConfigurationCost(
            label,
            models,
            mirrors,
            network_windows(plan, shape, step_fraction),
            _window_gflops(plan),
        )
        costs.append(cost)
        if on_cpu and speed is not None and seconds is not None:
            precision = "bf16" if use_autocast(None, "cpu", plan.precision) else "fp32"
            rate = speed.rate(network_family(plan.network.kind), precision)
            seconds += cost.passes * cost.gflops_per_window / rate
        else:
            seconds = None
    return PredictionCost(tuple(costs), seconds)


def default_mirroring(device_type: str, mirrored: PredictionCost | None) -> bool:
    """Whether test-time mirroring is on when the user has not chosen: always on a GPU; on a
    CPU when ``mirrored`` (the cost of a case with mirroring; None: no case to estimate) is
    estimated at :data:`CPU_MIRRORING_SECONDS` or less (off without an estimate, e.g. for a
    plan without a measured CPU speed)."""
    if device_type != "cpu":
        return True
    seconds = None if mirrored is None else mirrored.seconds
    return seconds is not None and seconds <= CPU_MIRRORING_SECONDS
