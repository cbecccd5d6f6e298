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
