"""Largest-connected-component rule: the operation, and the keep-only-if-it-helps decision."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autoseg.ensembling.postprocessing import (
    PostprocessingDecision,
    apply_postprocessing,
    decide_postprocessing,
    keep_largest_component,
    rule_from_decisions,
)
from autoseg.errors import ConfigError

SPACING = (1.0, 1.0, 1.0)


def _cube_case(*, spurious: bool, two_part_truth: bool = False) -> tuple[np.ndarray, ...]:
    """Reference: a 3³ cube of class 1 (plus a second 2³ part); prediction: the reference
    (plus a stray 2³ blob of class 1 far away); class 2 is a correct 2-voxel bar in both."""
    ref = np.zeros((10, 10, 10), dtype=np.uint8)
    ref[1:4, 1:4, 1:4] = 1
    if two_part_truth:
        ref[6:8, 6:8, 6:8] = 1
    ref[8, 1, 1:3] = 2
    pred = ref.copy()
    if spurious:
        pred[8:10, 8:10, 8:10] = 1
    return pred, ref


def test_keep_largest_component_removes_smaller_components_of_one_class() -> None:
    labels = np.zeros((6, 6, 6), dtype=np.int16)
    labels[0:2, 0:2, 0:2] = 1  # 8 voxels: kept
    labels[4, 4, 4:6] = 1  # 2 voxels: removed
    labels[4, 0, 0] = 2  # another class: untouched
    labels[5, 5, 0] = 2
    original = labels.copy()
    out = keep_largest_component(labels, 1)
    np.testing.assert_array_equal(labels, original)  # input not modified
    assert int(np.count_nonzero(out == 1)) == 8 and out[4, 4, 4] == 0 and out[4, 4, 5] == 0
    np.testing.assert_array_equal(out == 2, original == 2)
    assert out.dtype == labels.dtype


def test_components_touching_at_a_corner_are_one_component() -> None:
    labels = np.zeros((4, 4, 4), dtype=np.uint8)
    labels[0, 0, 0] = labels[1, 1, 1] = labels[2, 2, 2] = 1  # diagonal chain: 26-connected
    labels[3, 3, 0] = 1  # isolated voxel
    out = keep_largest_component(labels, 1)
    assert out[0, 0, 0] == out[1, 1, 1] == out[2, 2, 2] == 1 and out[3, 3, 0] == 0


def test_tie_keeps_the_component_met_first_in_c_order() -> None:
    labels = np.zeros((3, 5, 5), dtype=np.uint8)
    labels[2, 0, 0:2] = 1
    labels[0, 4, 3:5] = 1  # same size, met first scanning z, y, x
    out = keep_largest_component(labels, 1)
    assert out[0, 4, 3] == 1 and out[2, 0, 0] == 0


def test_single_component_and_absent_class_are_unchanged() -> None:
    pred, _ = _cube_case(spurious=False)
    np.testing.assert_array_equal(keep_largest_component(pred, 1), pred)
    np.testing.assert_array_equal(keep_largest_component(pred, 5), pred)
    with pytest.raises(ValueError, match="foreground"):
        keep_largest_component(pred, 0)


def test_apply_postprocessing_follows_the_rule() -> None:
    labels = np.zeros((5, 5, 5), dtype=np.uint8)
    labels[0, 0, 0:2] = 1
    labels[4, 4, 4] = 1
    labels[0, 4, 0:2] = 2
    labels[4, 0, 4] = 2
    out = apply_postprocessing(labels, {1: True, 2: False})
    assert out[4, 4, 4] == 0 and out[4, 0, 4] == 2
    out = apply_postprocessing(labels, {1: True, 2: True})
    assert out[4, 4, 4] == 0 and out[4, 0, 4] == 0


def test_rule_is_kept_when_it_removes_a_spurious_blob() -> None:
    cases = [(*_cube_case(spurious=True), SPACING), (*_cube_case(spurious=False), SPACING)]
    decisions = decide_postprocessing(cases, [1, 2])
    one = decisions[1]
    assert one.apply is True and one.num_changed == 1 and one.num_cases == 2
    assert one.before == pytest.approx((54 / 62 + 1.0) / 2)  # 2*27/(35+27) with the blob
    assert one.after == pytest.approx(1.0)
    # Class 2 is a single component: nothing changes, a tie, so the rule is not kept.
    assert decisions[2].apply is False and decisions[2].before == decisions[2].after
    assert rule_from_decisions(decisions) == {1: True, 2: False}


def test_rule_is_rejected_when_the_true_object_has_two_parts() -> None:
    cases = [(*_cube_case(spurious=False, two_part_truth=True), SPACING)]
    decision = decide_postprocessing(cases, [1])[1]
    assert decision.apply is False
    assert decision.before == pytest.approx(1.0)
    assert decision.after == pytest.approx(2 * 27 / (27 + 35))  # the 2³ part is lost
    assert decision.num_changed == 1


def test_hd95_is_lower_is_better() -> None:
    cases = [(*_cube_case(spurious=True), (2.0, 1.0, 1.0))]
    decision = decide_postprocessing(cases, [1], metric="hd95_mm")[1]
    assert decision.apply is True and decision.after == 0.0 and decision.before > 0.0


def test_cases_without_the_class_are_left_out() -> None:
    empty = np.zeros((10, 10, 10), dtype=np.uint8)
    cases = [(*_cube_case(spurious=True), SPACING), (empty, empty, SPACING)]
    decision = decide_postprocessing(cases, [1])[1]
    assert decision.num_cases == 1 and decision.before == pytest.approx(54 / 62)
    all_empty = decide_postprocessing([(empty, empty, SPACING)], [1])[1]
    assert all_empty.apply is False and math.isnan(all_empty.before)


def test_unknown_metric_suggests_the_nearest() -> None:
    with pytest.raises(ConfigError, match="did you mean 'dice'"):
        decide_postprocessing([], [1], metric="dise")
    with pytest.raises(ValueError, match="foreground"):
        decide_postprocessing([], [0, 1])
    pred, ref = _cube_case(spurious=False)
    with pytest.raises(ValueError, match="case #0"):
        decide_postprocessing([(pred, ref[:5], SPACING)], [1])


def test_decision_json_round_trip_is_strict() -> None:
    decision = PostprocessingDecision(
        np.int64(1), np.bool_(True), "dice", np.float32(0.5), 0.75, 3, 1
    )
    data = decision.to_dict()
    assert data == {
        "label": 1,
        "apply": True,
        "metric": "dice",
        "before": 0.5,
        "after": 0.75,
        "num_cases": 3,
        "num_changed": 1,
    }
    assert type(data["label"]) is int and type(data["before"]) is float
    assert PostprocessingDecision.from_dict(data) == decision
    nan_decision = PostprocessingDecision(2, False, "dice", math.nan, math.nan, 0, 0)
    assert nan_decision.to_dict()["before"] is None
    assert math.isnan(PostprocessingDecision.from_dict(nan_decision.to_dict()).after)
    with pytest.raises(ValueError, match="expected"):
        PostprocessingDecision.from_dict({**data, "extra": 1})
    with pytest.raises(ValueError, match="expected"):
        PostprocessingDecision.from_dict({k: v for k, v in data.items() if k != "metric"})
