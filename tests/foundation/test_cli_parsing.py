from __future__ import annotations

import argparse

import pytest

from autoseg.cli import main, parse_folds, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fold=0..4", [0, 1, 2, 3, 4]),
        ("fold=2", [2]),
        ("fold=all", ["all"]),
        ("0", [0]),
        ("fold=3,1", [1, 3]),
        ("fold=0..1,4", [0, 1, 4]),
    ],
)
def test_parse_folds(text: str, expected: list[int | str]) -> None:
    assert parse_folds(text) == expected


@pytest.mark.parametrize("text", ["fold=5", "fold=x", "fold=3..1", "fold=", "fold=-1"])
def test_parse_folds_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_folds(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("11GB", 11 * 10**9),
        ("11GiB", 11 * 2**30),
        ("512MB", 512 * 10**6),
        ("8e9", 8 * 10**9),
        ("1.5gb", 1_500_000_000),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "GB", "11XB", "-3GB", "0"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_size(text)


def test_unknown_command_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "invalid choice" in err


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    from autoseg.cli import COMMANDS

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def _parsed(argv: list[str]):
    from autoseg.cli import _parse, build_parser

    return _parse(build_parser(), argv)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["predict", "-i", "x", "-o", "y", "--folds", "0", "1", "2"], [0, 1, 2]),
        (["predict", "-i", "x", "-o", "y", "-f", "4", "0..1"], [0, 1, 4]),
        (["predict", "-i", "x", "-o", "y", "--folds", "all"], ["all"]),
        (["export-model", "--out", "m.zip", "--folds", "3", "1"], [1, 3]),
        (["tune", "d", "--folds", "0", "1"], [0, 1]),
    ],
)
def test_folds_options_take_space_separated_values(argv, expected) -> None:
    assert _parsed(argv).folds == expected


@pytest.mark.parametrize(
    ("argv", "folds", "fold"),
    [
        (["train", "fold=0", "1", "2"], [0, 1, 2], None),
        (["train", "0..1", "--epochs", "2"], [0, 1], None),
        (["train", "--fold", "0", "1"], None, [0, 1]),
        (["train", "--folds", "2", "4"], None, [2, 4]),
        (["train", "--epochs", "2"], None, None),
    ],
)
def test_train_folds(argv, folds, fold) -> None:
    args = _parsed(argv)
    assert (args.folds, args.fold) == (folds, fold)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--config", "3d_fullres"], "did you mean 'unet3d'"),
        (["predict", "-i", "x", "-o", "y", "--config", "3d_fullres"], "did you mean 'unet3d'"),
        (["find-best", "--configs", "unet3d", "2d"], "did you mean 'unet2d'"),
        (["train", "--config", "unet3d,3d_lowres"], "did you mean 'unet3d_lowres'"),
        (["predict", "-i", "x", "-o", "y", "--folds", "0", "all"], "give it alone"),
        (["train", "--epoch", "3"], "did you mean --epochs?"),
        (["predict", "-i", "x", "-o", "y", "--fold", "0"], "did you mean --folds?"),
        (["train", "--device", "gpu"], "cuda:N"),
    ],
)
def test_usage_errors_name_the_subcommand_help(argv, message, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert message in err
    assert f"(see 'autoseg {argv[0]} --help')" in err


def test_config_errors_of_a_handler_name_the_subcommand_help(tmp_path, capsys) -> None:
    assert main(["train", "--work", str(tmp_path), "fold=0", "--fold", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "give the folds once" in err and err.endswith("(see 'autoseg train --help')")


@pytest.mark.parametrize("device", ["cuda:1", "cuda:0", "cuda", "cpu", "auto", "mps"])
def test_train_accepts_cuda_with_an_index(device) -> None:
    from autoseg.trainers.config import TrainConfig

    assert _parsed(["train", "--device", device]).device == device
    assert TrainConfig(device=device).device == device


def test_cuda_index_without_cuda_falls_back_to_the_cpu(monkeypatch) -> None:
    import torch

    from autoseg.trainers.device import select_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device("cuda:1").type == "cpu"
