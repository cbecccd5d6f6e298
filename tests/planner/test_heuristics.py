from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoseg.errors import ConfigError
from autoseg.planner.heuristics import PlannerHeuristics, load_heuristics


def test_round_trip_through_json() -> None:
    heuristics = PlannerHeuristics(unet_base_features=24, deepmedic_subsample_factors=(3,))
    data = json.loads(json.dumps(heuristics.to_dict()))
    assert PlannerHeuristics.from_dict(data) == heuristics


def test_partial_file_overrides_defaults(tmp_path: Path) -> None:
    path = tmp_path / "h.json"
    path.write_text(json.dumps({"unet_base_features": 8, "cpu_seconds_per_iteration": 2.5}))
    heuristics = load_heuristics(path)
    assert heuristics.unet_base_features == 8 and heuristics.cpu_seconds_per_iteration == 2.5
    assert heuristics.unet_max_features == PlannerHeuristics().unet_max_features


def test_wrapped_best_heuristics_form_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "best.json"
    path.write_text(json.dumps({"heuristics": {"spacing_percentile": 40}, "value": 0.9}))
    assert load_heuristics(path).spacing_percentile == 40


def test_unknown_key_suggests_the_nearest(tmp_path: Path) -> None:
    path = tmp_path / "h.json"
    path.write_text(json.dumps({"unet_base_feature": 8}))
    with pytest.raises(ConfigError, match="did you mean 'unet_base_features'") as info:
        load_heuristics(path)
    assert info.value.path == path


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("memory_safety_margin", 1.5, r"in \(0, 1\]"),
        ("unet_base_features", 0, "positive"),
        ("spacing_percentile", 120, r"\[0, 100\]"),
        ("deepmedic_subsample_factors", [1], ">= 2"),
        ("cpu_unet_min_patch_coverage", 1.5, r"in \[0, 1\]"),
        ("cpu_unet_min_patch_coverage", -0.1, r"in \[0, 1\]"),
        ("cpu_unet_min_base_features", 0, "positive"),
    ],
)
def test_out_of_range_values_are_rejected(key: str, value: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        PlannerHeuristics.from_dict({key: value}, partial=True)


def test_missing_file_and_bad_json(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_heuristics(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_heuristics(bad)
