"""``autoseg train`` options -> TrainingRequest (no training)."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoseg.cli import build_parser, main
from autoseg.cli.train_options import request_from_args
from autoseg.errors import ConfigError
from autoseg.trainers.config import TrainConfig


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
        TrainConfig(lr=-1.0)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train", "--time-budget", "-5m"], "argument --time-budget: invalid duration '-5m'"),
        (["plan", "d", "--gpu-memory", "-1GB"], "argument --gpu-memory: size must be positive"),
        (["plan", "d", "--gpu-memory", "1e30TB"], "argument --gpu-memory: size '1e30TB' is more"),
        (["train", "--grad-clip", "-1"], "argument --grad-clip: expected a number >= 0, got '-1'"),
        (["train", "--lr", "-1"], "argument --lr: expected a number > 0, got '-1'"),
        (["train", "--lr", "nan"], "argument --lr: expected a finite number, got 'nan'"),
        (["train", "--val-step", "nan"], "argument --val-step: expected a finite number"),
        (["train", "--val-step", "0"], "argument --val-step: expected a number in (0, 1]"),
        (["train", "--momentum", "1"], "argument --momentum: expected a number in [0, 1)"),
        (["predict", "-i", "x", "-o", "y", "--step-size", "nan"], "argument --step-size: "),
        (["evaluate", "p", "g", "--labels", "-3"], "argument --labels: expected an integer >= 0"),
        (["evaluate", "p", "g", "--nsd-tolerance", "nan"], "argument --nsd-tolerance: expected"),
        (["demo-data", "o", "--noise", "-0.5"], "argument --noise: expected a number >= 0"),
    ],
)
def test_bad_option_values_name_the_option(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Once "expected one argument" (a negative value taken for an option), accepted (a
    negative clip norm, 1e30 TB, NaN steps, negative labels) or named internally."""
    assert main(argv) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"autoseg {argv[0]}: error: {expected}"), line


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
