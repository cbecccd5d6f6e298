"""TuneRequest validation and the per-unit budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoseg.errors import ConfigError
from autoseg.tuning.request import DEFAULT_BUDGET_MINUTES, PRUNERS, TuneRequest

DATA = (Path("a"), Path("b"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"datasets": ()}, "at least one DATASET"),
        ({"configs": ("unet",)}, "did you mean 'unet3d'"),
        ({"configs": ()}, "at least one configuration"),
        ({"configs": ("unet3d_cascade",)}, "unet3d_cascade cannot be tuned"),
        ({"folds": (5,)}, "folds must be in 0..4"),
        ({"pruner": "hyper"}, "did you mean 'hyperband'"),
        ({"device": "gpu"}, "unknown device 'gpu'"),
        ({"trials": 0}, "trials must be >= 1"),
        ({"heartbeat_seconds": 0}, "heartbeat_seconds must be >= 1"),
        ({"budget_minutes": -1.0}, "budget_minutes must be positive"),
        ({"budget_minutes": 5.0, "epochs": 2}, "not both"),
        ({"loader_workers": -1}, "loader_workers must be >= 0"),
    ],
)
def test_invalid_requests_name_the_problem(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TuneRequest(**{"datasets": DATA, **changes})  # type: ignore[arg-type]


def test_the_2d_and_low_resolution_unets_can_be_tuned() -> None:
    request = TuneRequest(DATA, configs=("unet2d", "unet3d_lowres"))
    assert request.configs == ("unet2d", "unet3d_lowres")
    assert TuneRequest(DATA).configs == ("unet3d", "deepmedic")


def test_budget_is_split_evenly_over_units() -> None:
    request = TuneRequest(DATA, budget_minutes=12.0, configs=("unet3d", "deepmedic"), folds=(0, 1))
    assert request.num_units == 8
    assert request.unit_budget_seconds == pytest.approx(12 * 60 / 8)
    default = TuneRequest(DATA[:1], configs=("unet3d",))
    assert default.unit_budget_seconds == pytest.approx(DEFAULT_BUDGET_MINUTES * 60)
    assert TuneRequest(DATA, epochs=3).unit_budget_seconds is None


def test_configs_and_folds_are_normalised() -> None:
    request = TuneRequest(DATA, configs=("deepmedic", "unet3d", "deepmedic"), folds=(2, 0, 2))
    assert request.configs == ("deepmedic", "unet3d") and request.folds == (0, 2)


def test_study_settings_hold_what_makes_trials_comparable() -> None:
    request = TuneRequest(DATA, epochs=2, iters_per_epoch=3, configs=("unet3d",), seed=4)
    settings = request.study_settings(["A", "B"], on_cpu=True, base={"x": 1})
    assert settings["datasets"] == ["A", "B"] and settings["configs"] == ["unet3d"]
    assert settings["device"] == "cpu" and settings["epochs"] == 2
    assert settings["base_heuristics"] == {"x": 1}
    # worker-local knobs are not part of it
    other = TuneRequest(DATA, epochs=2, iters_per_epoch=3, configs=("unet3d",), seed=9, trials=50)
    assert other.study_settings(["A", "B"], True, {"x": 1}) == settings


def test_the_cli_offers_every_pruner() -> None:
    from autoseg.cli import build_parser

    parser = build_parser()
    for pruner in PRUNERS:
        args = parser.parse_args(["tune", "--show", "--pruner", pruner])
        assert args.pruner == pruner
