"""``autoseg train`` options -> TrainingRequest (no training)."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoseg.cli import build_parser
from autoseg.cli.train_options import request_from_args
from autoseg.errors import ConfigError


def _request(*argv: str) -> object:
    args = build_parser().parse_args(["train", *argv])
    return request_from_args(args, args.folds or args.fold or [0, 1, 2, 3, 4])


def test_options_map_onto_the_config() -> None:
    request = _request(
        "--config", "unet3d,deepmedic", "fold=0..1", "--time-budget", "1h30m", "--lr", "0.1",
        "--no-amp", "--threads", "1", "--grad-clip", "0", "--no-validation", "--resume",
        "--pretrained", "w.pt", "--no-val-mirroring", "--loss", "generalized_dice_ce",
    )  # fmt: skip
    assert request.configs == ("unet3d", "deepmedic") and request.folds == (0, 1)  # type: ignore[attr-defined]
    config = request.config  # type: ignore[attr-defined]
    assert config.time_budget_seconds == 5400 and config.lr == 0.1 and config.amp is False
    assert config.threads == 1 and config.grad_clip_norm is None and not config.final_validation
    assert config.val_mirroring is False and config.loss == "generalized_dice_ce"
    assert request.resume and request.pretrained == Path("w.pt")  # type: ignore[attr-defined]


def test_defaults() -> None:
    request = _request("--fold", "all")
    assert request.configs == ("all",) and request.folds == ("all",)  # type: ignore[attr-defined]
    config = request.config  # type: ignore[attr-defined]
    assert config.epochs is None and config.iters_per_epoch is None and config.amp is None
    assert config.device == "auto" and config.grad_clip_norm == 12.0


def test_invalid_values_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="lr must be a positive number"):
        _request("--lr", "-1")


@pytest.mark.parametrize("value", ["0", "-3", "x"])
def test_counts_must_be_positive_integers(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["train", "--epochs", value])
    assert exited.value.code == 2
    assert "argument --epochs: expected a positive integer" in capsys.readouterr().err


def test_abbreviated_options_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["train", "--epoch", "3"])
    assert exited.value.code == 2
    assert "unrecognized arguments: --epoch" in capsys.readouterr().err
