"""What predicting a case costs: network passes (models x mirrors x windows) and, on a CPU,
an estimate of the seconds, printed by ``autoseg predict`` before it starts.

The passes follow the one window-count rule of inference (sliding-window windows for the
U-Net, :func:`~autoseg.inference.deepmedic_tiling.tile_starts` of the balanced tile for
DeepMedic). The seconds are the passes' analytic forward compute
(:func:`autoseg.planner.compute.estimate_forward_gflops`) at the training speed measured on
the CPU the plan was made on; reading, preprocessing and export come on top.
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

__all__ = ["ConfigurationCost", "PredictionCost", "estimate_prediction_cost", "network_windows"]


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
    costs = []
    seconds: float | None = 0.0
    speed = plans.hardware.cpu_speed
    runs = [(name, name, models) for name, models in folds.items()]
    runs += [(f"{name} (first stage)", name, models) for name, models in (stages or {}).items()]
    for label, name, models in runs:
        plan = plans.configuration(name)
        shape = [
            max(1, round(n * s / t))
            for n, s, t in zip(original_shape, original_spacing, plan.target_spacing)
        ]
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
