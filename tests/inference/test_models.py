"""Which checkpoints a prediction uses: --config, --folds, --checkpoint, best.json."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from autoseg.errors import CheckpointError, ConfigError, PlansError
from autoseg.inference.models import plans_differences, select_models, trained_folds
from autoseg.planner.plans import Plans
from autoseg.workspace import Workspace

BEST = {
    "schema_version": 1,
    "configs": ["unet3d", "deepmedic"],
    "folds": [0, 1],
    "metric": "dice",
    "score": 0.8,
    "postprocessing": {"1": True, "2": False, "3": False},
}


def test_named_configuration_uses_every_trained_fold(
    tmp_path: Path, planned: tuple[Path, Plans], workspace_factory: Callable[..., Workspace]
) -> None:
    plans = planned[1]
    ws = workspace_factory(tmp_path / "w", plans, {"unet3d": (0, 3, "all"), "deepmedic": (1,)})
    assert trained_folds(ws, "unet3d") == [0, 3, "all"]
    selection = select_models(ws, plans, "unet3d")
    assert selection.configs == ("unet3d",) and selection.folds["unet3d"] == (0, 3)
    assert dict(selection.postprocessing) == {}
    assert select_models(ws, plans, "unet3d", ["all"]).folds["unet3d"] == ("all",)
    paths = select_models(ws, plans, "deepmedic").checkpoint_paths(ws)
    assert paths == {"deepmedic": [ws.fold_dir("deepmedic", 1) / "checkpoint_final.pt"]}


def test_best_json_gives_configs_folds_and_rule(
    tmp_path: Path, planned: tuple[Path, Plans], workspace_factory: Callable[..., Workspace]
) -> None:
    plans = planned[1]
    ws = workspace_factory(tmp_path / "w", plans, best=BEST)
    for config in ("best", None):
        selection = select_models(ws, plans, config)
        assert selection.configs == ("unet3d", "deepmedic")
        assert selection.folds == {"unet3d": (0, 1), "deepmedic": (0, 1)}
        assert dict(selection.postprocessing) == {1: True, 2: False, 3: False}
        assert selection.source == "best.json"
    assert select_models(ws, plans, "best", [1]).folds["deepmedic"] == (1,)


def test_missing_and_untrained_folds_are_named(
    tmp_path: Path, planned: tuple[Path, Plans], workspace_factory: Callable[..., Workspace]
) -> None:
    plans = planned[1]
    ws = workspace_factory(tmp_path / "w", plans, {"unet3d": (0, 1)})
    with pytest.raises(CheckpointError, match=r"fold\(s\) 2, 4 of 'unet3d' .* trained folds: 0, 1"):
        select_models(ws, plans, "unet3d", [0, 2, 4])
    with pytest.raises(CheckpointError, match="'deepmedic' has no trained fold"):
        select_models(ws, plans, "deepmedic")
    with pytest.raises(CheckpointError, match=r"checkpoints present: fold_0/checkpoint_final\.pt"):
        select_models(ws, plans, "unet3d", checkpoint="best")
    with pytest.raises(ConfigError, match="checkpoint must be one of latest, best, final"):
        select_models(ws, plans, "unet3d", checkpoint="last")
    with pytest.raises(
        ConfigError, match=r"unknown configuration 'unet'; planned: .* did you mean 'unet3d'\?"
    ):
        select_models(ws, plans, "unet")


def test_default_needs_best_json_or_a_single_trained_config(
    tmp_path: Path, planned: tuple[Path, Plans], workspace_factory: Callable[..., Workspace]
) -> None:
    plans = planned[1]
    ws = workspace_factory(tmp_path / "one", plans, {"deepmedic": (2,)})
    assert select_models(ws, plans).configs == ("deepmedic",)
    both = workspace_factory(tmp_path / "two", plans)
    with pytest.raises(ConfigError, match="2 configurations have trained folds"):
        select_models(both, plans)
    with pytest.raises(PlansError, match=r"best\.json not found: run 'autoseg find-best'"):
        select_models(both, plans, "best")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"configs": ["unet3d"], "folds": [0]}', "must hold the keys configs, folds"),
        ('{"configs": [], "folds": [0], "postprocessing": {}}', "non-empty list of names"),
        ('{"configs": ["unet3d"], "folds": ["x"], "postprocessing": {}}', "invalid folds"),
    ],
)
def test_malformed_best_json(
    tmp_path: Path,
    planned: tuple[Path, Plans],
    workspace_factory: Callable[..., Workspace],
    content: str,
    message: str,
) -> None:
    ws = workspace_factory(tmp_path / "w", planned[1])
    ws.best_json.write_text(content)
    with pytest.raises(PlansError, match=message):
        select_models(ws, planned[1], "best")


def test_plans_differences_names_the_keys(planned: tuple[Path, Plans]) -> None:
    plans = planned[1]
    unet = dataclasses.replace(plans.configuration("unet3d"), batch_size=7)
    changed = dataclasses.replace(
        plans,
        use_roi_mask=not plans.use_roi_mask,
        configurations={**plans.configurations, "unet3d": unet},
    )
    assert plans_differences(plans, plans) == []
    assert plans_differences(plans, changed) == [
        "configurations.unet3d.batch_size",
        "use_roi_mask",
    ]
