"""Whether a fold's final validation mirrors: the user's choice, else inference's default
for one model on the median-sized validation case (on a GPU always, on a CPU when cheap)."""

from __future__ import annotations

import dataclasses

import pytest

from autoseg.planner.hardware_target import CpuSpeed
from autoseg.planner.plans import Plans, load_plans
from autoseg.trainers.config import TrainConfig
from autoseg.trainers.session import FoldSpec
from autoseg.trainers.validation import final_validation_mirrors
from autoseg.workspace import Workspace


def _spec(workspace: Workspace, gflops_per_second: float | None) -> FoldSpec:
    plans: Plans = load_plans(workspace.plans_json)
    speed = None
    if gflops_per_second is not None:
        rates = {"fp32": gflops_per_second, "bf16": gflops_per_second}
        speed = CpuSpeed({"unet": rates, "deepmedic": rates}, 1, 0.0)
    plans = dataclasses.replace(
        plans, hardware=dataclasses.replace(plans.hardware, cpu_speed=speed)
    )
    cases = tuple(sorted(p.stem for p in workspace.root.glob("preprocessed/*/*.json")))
    return FoldSpec(plans, "unet3d", 0, cases[2:], cases[:2], workspace)


@pytest.mark.parametrize(
    ("speed", "device", "choice", "expected"),
    [
        (1e3, "cpu", None, True),  # a phantom case in milliseconds: mirrored
        (1e-4, "cpu", None, False),  # the same case in hours
        (None, "cpu", None, False),  # no measured speed: no estimate
        (1e-4, "cuda", None, True),  # a GPU mirrors whatever the estimate
        (1e-4, "cpu", True, True),  # --val-mirroring
        (1e3, "cuda", False, False),  # --no-val-mirroring
    ],
)
def test_the_final_validation_mirrors_where_predict_would(
    planned: Workspace, speed: float | None, device: str, choice: bool | None, expected: bool
) -> None:
    spec = _spec(planned, speed)
    config = TrainConfig(val_mirroring=choice)
    assert final_validation_mirrors(spec, config, device) is expected
