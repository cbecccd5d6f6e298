"""What predicting a case costs: the passes counted are the passes run, the seconds follow
the plan's measured CPU speed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from autoseg.inference.cost import estimate_prediction_cost, network_windows
from autoseg.inference.probabilities import predict_probabilities
from autoseg.networks import build_network
from autoseg.planner.plans import CpuSpeed, Plans


def _samples_forwarded(network: torch.nn.Module) -> list[int]:
    """Batch sizes of every forward call (a hook on the network)."""
    seen: list[int] = []

    def hook(module: torch.nn.Module, args: tuple[object, ...]) -> None:
        first = args[0]
        tensor = first[0] if isinstance(first, (list, tuple)) else first
        seen.append(int(tensor.shape[0]))  # type: ignore[union-attr]

    network.register_forward_pre_hook(hook)
    return seen


@pytest.mark.parametrize("config", ["unet3d", "unet2d", "deepmedic"])
@pytest.mark.parametrize("shape", [(12, 16, 16), (21, 33, 17), (40, 9, 30)])
@pytest.mark.parametrize("mirroring", [False, True])
def test_counted_passes_are_the_passes_run(
    planned: tuple[Path, Plans], config: str, shape: tuple[int, int, int], mirroring: bool
) -> None:
    plans = planned[1]
    plan = plans.configuration(config)
    network = build_network(plan.network)
    seen = _samples_forwarded(network)
    image = np.random.default_rng(0).normal(size=(plans.num_channels, *shape))
    predict_probabilities([network], plan, image.astype(np.float32), use_mirroring=mirroring)
    cost = estimate_prediction_cost(
        plans,
        {config: 1},
        shape,
        plan.target_spacing,  # the preprocessed grid is the original one
        mirroring=mirroring,
        step_fraction=0.5,
        on_cpu=False,
    )
    assert cost.passes == sum(seen)
    assert cost.seconds is None  # not on a CPU
    mirrors = 2 ** len(plan.augmentation.mirror_axes) if mirroring else 1  # 2D: 4
    assert network_windows(plan, shape, 0.5) * mirrors == cost.passes


def test_seconds_follow_the_measured_speed_and_the_folds(planned: tuple[Path, Plans]) -> None:
    plans = planned[1]
    speed = CpuSpeed({"unet": {"fp32": 10.0}, "deepmedic": {"fp32": 5.0}}, 1, 0.0)
    plans = dataclasses.replace(
        plans, hardware=dataclasses.replace(plans.hardware, cpu_speed=speed)
    )
    spacing = plans.configuration("unet3d").target_spacing
    one = estimate_prediction_cost(
        plans, {"unet3d": 1}, (20, 20, 20), spacing, mirroring=False, step_fraction=0.5, on_cpu=True
    )
    [unet] = one.configurations
    assert one.seconds == pytest.approx(unet.passes * unet.gflops_per_window / 10.0)
    both = estimate_prediction_cost(
        plans,
        {"unet3d": 5, "deepmedic": 5},
        (20, 20, 20),
        spacing,
        mirroring=True,
        step_fraction=0.5,
        on_cpu=True,
    )
    assert both.passes == sum(c.models * 8 * c.windows for c in both.configurations)
    assert both.seconds is not None and both.seconds > 5 * 8 * one.seconds  # type: ignore[operator]
    assert "unet3d 5 fold(s) x 8 mirror(s)" in both.describe()
    assert "network passes per case" in both.describe() and "s of network time" in both.describe()


def test_a_cascade_counts_its_first_stage(planned: tuple[Path, Plans]) -> None:
    plans = planned[1]
    spacing = plans.configuration("unet3d").target_spacing
    alone = estimate_prediction_cost(
        plans,
        {"unet3d": 2},
        (20, 20, 20),
        spacing,
        mirroring=False,
        step_fraction=0.5,
        on_cpu=False,
    )
    staged = estimate_prediction_cost(
        plans,
        {"unet3d": 2},
        (20, 20, 20),
        spacing,
        mirroring=False,
        step_fraction=0.5,
        on_cpu=False,
        stages={"unet2d": 3},  # any planned configuration stands in for a first stage
    )
    first = staged.configurations[1]
    assert first.name == "unet2d (first stage)" and first.models == 3
    assert staged.passes == alone.passes + first.passes
    assert "+ unet2d (first stage) 3 fold(s)" in staged.describe()
