"""Mirror axes from the data: an axis along which two classes keep their order is not
mirrored, in training nor at test time; every other axis is."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from autoseg.errors import ConfigError
from autoseg.frozendict import FrozenDict
from autoseg.planner.fingerprint import (
    FINGERPRINT_SCHEMA_VERSION,
    CaseFingerprint,
    Fingerprint,
    IntensityStats,
)
from autoseg.planner.heuristics import PlannerHeuristics
from autoseg.planner.mirroring import ClassOrder, class_orders, mirror_axes_for
from autoseg.planner.planner import plan_dataset
from autoseg.planner.plans import HardwareTarget
from autoseg.planner.summary import format_plan_summary
from autoseg.planner.workflow import PlanReport, run_plan
from autoseg.preprocessing.dataset import PreprocessingReport
from autoseg.workspace import Workspace

TARGET = HardwareTarget("cuda", "test", 11 * 10**9, "--gpu-memory", 8)
STATS = (IntensityStats(0.0, 1.0, 0.0, -2.0, 2.0, -3.0, 3.0),)
SHAPE = (32, 32, 32)


def _case(i: int, centroids: dict[int, tuple[float, float, float]]) -> CaseFingerprint:
    voxels = FrozenDict({0: 30_000, **{v: 500 for v in centroids}})
    return CaseFingerprint(
        f"c{i}", (1.0, 1.0, 1.0), SHAPE, SHAPE, STATS, voxels, FrozenDict(), FrozenDict(),
        FrozenDict(centroids),
    )  # fmt: skip


def _lateral_cases(n: int, seed: int = 0) -> list[CaseFingerprint]:
    """Class 1 always left of class 2 along X (by 8-12 mm); Z and Y in random order (a
    nested class 3 sits on class 2 with jitter)."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        z, y = rng.uniform(12, 20, size=2)
        one = (z + rng.normal(), y + rng.normal(), 10.0 + rng.uniform(-1, 1))
        two = (z + rng.normal(), y + rng.normal(), 20.0 + rng.uniform(-1, 1))
        three = tuple(v + rng.normal() for v in two)
        cases.append(_case(i, {1: one, 2: two, 3: three}))  # type: ignore[dict-item]
    return cases


def _fingerprint(cases: list[CaseFingerprint]) -> Fingerprint:
    labels = sorted({v for c in cases for v in c.voxels_per_class})
    return Fingerprint(
        "Example", ("T2",), FrozenDict({f"class_{v}": v for v in labels}), tuple(cases), STATS,
        FrozenDict({v: 0.9 if v == 0 else 0.1 / (len(labels) - 1) for v in labels}),
        FrozenDict({v: 1.0 for v in labels if v}), (1.0, 1.0, 1.0), SHAPE,
    )  # fmt: skip


def test_a_class_pair_in_fixed_order_fixes_that_axis_only() -> None:
    orders = class_orders(_lateral_cases(40), PlannerHeuristics())
    assert {(o.axis, o.first, o.second) for o in orders} == {(2, 1, 2), (2, 1, 3)}
    assert all(o.ordered == o.cases == 40 for o in orders)
    assert mirror_axes_for((0, 1, 2), orders) == (0, 1)
    described = orders[0].describe({1: "left", 2: "right"})
    assert described == "left before right along X in 40 of 40 cases"


def test_too_few_cases_or_an_exception_too_many_keep_the_axis() -> None:
    assert class_orders(_lateral_cases(9), PlannerHeuristics()) == []  # min cases 10
    cases = _lateral_cases(19)
    swapped = cases[0].class_centroids
    cases[0] = _case(0, {1: swapped[2], 2: swapped[1]})
    # 18 of 19 (94.7 %) keep the order between classes 1 and 2: under 95 %.
    pairs = {(o.first, o.second) for o in class_orders(cases, PlannerHeuristics())}
    assert (1, 2) not in pairs
    lenient = PlannerHeuristics(mirror_order_fraction=0.9)
    assert (1, 2) in {(o.first, o.second) for o in class_orders(cases, lenient)}


def test_ties_count_against_the_order_and_the_ignore_label_is_left_out() -> None:
    tied = [_case(i, {1: (5.0, 5.0, 5.0), 2: (5.0, 5.0, 9.0)}) for i in range(12)]
    orders = class_orders(tied, PlannerHeuristics())
    assert [(o.axis, o.first, o.second) for o in orders] == [(2, 1, 2)]
    assert class_orders(tied, PlannerHeuristics(), ignore=(2,)) == []


def test_the_plan_mirrors_only_free_axes_in_3d_2d_and_deepmedic() -> None:
    plans = plan_dataset(_fingerprint(_lateral_cases(30)), PlannerHeuristics(), TARGET)
    assert plans.configurations["unet3d"].augmentation.mirror_axes == (0, 1)
    assert plans.configurations["deepmedic"].augmentation.mirror_axes == (0, 1)
    unet2d = plans.configurations["unet2d"]
    assert 2 not in unet2d.augmentation.mirror_axes and unet2d.augmentation.mirror_axes
    # The same structures without a fixed layout (mirrored halves of the cases): every axis.
    cases = _lateral_cases(30)
    for i in range(0, 30, 2):
        c = cases[i].class_centroids
        cases[i] = _case(i, {1: c[2], 2: c[1], 3: c[3]})
    plans = plan_dataset(_fingerprint(cases), PlannerHeuristics(), TARGET)
    assert plans.configurations["unet3d"].augmentation.mirror_axes == (0, 1, 2)


def test_plan_prints_the_mirror_axes_and_the_orders_that_fixed_the_others() -> None:
    fingerprint = _fingerprint(_lateral_cases(30))
    heuristics = PlannerHeuristics()
    plans = plan_dataset(fingerprint, heuristics, TARGET)
    orders = tuple(class_orders(fingerprint.cases, heuristics))
    report = PlanReport(plans, False, False, PreprocessingReport({}, {}), orders)
    line = next(x for x in format_plan_summary(report).splitlines() if x.startswith("mirror"))
    assert line == (
        "mirroring: Z, Y; not X, where the classes keep their order (class_1 before class_2"
        " along X in 30 of 30 cases; class_1 before class_3 along X in 30 of 30 cases)"
    )
    free = PlanReport(plans, False, False, PreprocessingReport({}, {}))
    assert "mirroring: Z, Y\n" in format_plan_summary(free) + "\n"


def test_a_fingerprint_without_centroids_mirrors_every_axis() -> None:
    cases = [dataclasses.replace(c, class_centroids=FrozenDict()) for c in _lateral_cases(20)]
    plans = plan_dataset(_fingerprint(cases), PlannerHeuristics(), TARGET)
    assert plans.configurations["unet3d"].augmentation.mirror_axes == (0, 1, 2)


def test_old_plans_record_no_dropped_axis() -> None:
    record = PlannerHeuristics().to_dict()
    del record["mirror_order_fraction"], record["mirror_order_min_cases"]
    old = PlannerHeuristics.from_record(record)
    assert class_orders(_lateral_cases(40), old) == []


@pytest.mark.parametrize("value", [0.5, 1.01])
def test_the_order_fraction_must_be_a_majority(value: float) -> None:
    with pytest.raises(ConfigError, match="mirror_order_fraction"):
        PlannerHeuristics(mirror_order_fraction=value)


def test_replan_recomputes_a_fingerprint_of_the_previous_schema(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    workspace = Workspace(tmp_path / "w")
    first = run_plan(tiny_dataset, workspace, device="cpu")
    assert not first.fingerprint_reused
    assert all(isinstance(o, ClassOrder) for o in first.class_orders)
    data = json.loads(workspace.fingerprint_json.read_text())
    data["schema_version"] = 1
    for case in data["cases"]:
        del case["class_centroids"]
    workspace.fingerprint_json.write_text(json.dumps(data))
    again = run_plan(tiny_dataset, workspace, device="cpu")
    assert not again.fingerprint_reused
    fresh = json.loads(workspace.fingerprint_json.read_text())
    assert fresh["schema_version"] == FINGERPRINT_SCHEMA_VERSION == 2
    assert all("class_centroids" in c for c in fresh["cases"])
    assert run_plan(tiny_dataset, workspace, device="cpu").fingerprint_reused
