"""What predicting a case costs: the passes counted are the passes run, the seconds follow
the plan's measured CPU speed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from autoseg.inference.cost import (
    CPU_MIRRORING_SECONDS,
    ConfigurationCost,
    PredictionCost,
    default_mirroring,
    estimate_prediction_cost,
    estimate_resampled_cost,
    network_windows,
)
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


def _with_speed(plans: Plans, gflops_per_second: float) -> Plans:
    speed = CpuSpeed({"unet": {"fp32": gflops_per_second}, "deepmedic": {"fp32": 1.0}}, 1, 0.0)
    hardware = dataclasses.replace(plans.hardware, cpu_speed=speed)
    return dataclasses.replace(plans, hardware=hardware)


def test_one_model_on_its_grid_costs_what_a_case_at_that_spacing_costs(
    planned: tuple[Path, Plans],
) -> None:
    plans = _with_speed(planned[1], 10.0)
    spacing = plans.configuration("unet3d").target_spacing
    for mirroring in (False, True):
        whole = estimate_prediction_cost(
            plans, {"unet3d": 1}, (21, 33, 17), spacing,
            mirroring=mirroring, step_fraction=0.5, on_cpu=True,
        )  # fmt: skip
        resampled = estimate_resampled_cost(
            plans, "unet3d", (21, 33, 17), mirroring=mirroring, step_fraction=0.5
        )
        assert resampled == whole


@pytest.mark.parametrize(
    ("device", "seconds", "expected"),
    [
        ("cuda", None, True),  # a GPU mirrors whatever the cost
        ("cuda", 1e6, True),
        ("cpu", CPU_MIRRORING_SECONDS, True),  # the limit itself is in
        ("cpu", 0.01, True),
        ("cpu", CPU_MIRRORING_SECONDS * 1.01, False),
        ("cpu", None, False),  # no measured speed: no estimate, no mirroring
    ],
)
def test_mirroring_by_default_follows_the_device_and_the_estimate(
    device: str, seconds: float | None, expected: bool
) -> None:
    cost = PredictionCost((ConfigurationCost("unet3d", 5, 8, 1, 1.0),), seconds)
    assert default_mirroring(device, cost) is expected


@pytest.mark.parametrize(("device", "expected"), [("cuda", True), ("cpu", False)])
def test_without_a_case_to_estimate_only_a_gpu_mirrors(device: str, expected: bool) -> None:
    assert default_mirroring(device, None) is expected


def test_a_case_that_mirrors_cheaply_on_one_cpu_does_not_on_a_slower_one(
    planned: tuple[Path, Plans],
) -> None:
    """The same tiny case, mirrored: within the limit at 10 GFLOP/s, far over it at 1e-4."""
    for speed, expected in ((10.0, True), (1e-4, False)):
        plans = _with_speed(planned[1], speed)
        cost = estimate_resampled_cost(
            plans, "unet3d", (21, 33, 17), mirroring=True, step_fraction=0.5
        )
        assert cost.seconds is not None
        assert (cost.seconds <= CPU_MIRRORING_SECONDS) is expected
        assert default_mirroring("cpu", cost) is expected
