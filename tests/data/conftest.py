"""Fixtures for the data tests: a small phantom to break, and the CLI run in-process."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from autoseg.cli import main

VERIFY_BASE = {
    "num_train_cases": 3,
    "num_test_cases": 1,
    "base_shape": (16, 20, 20),
    "with_roi": True,
    "seed": 7,
}


@pytest.fixture(scope="session")
def verify_base(phantom_dataset: Callable[..., Path]) -> Path:
    """A small valid phantom with ROI masks (read-only: copy it with ``broken``)."""
    return phantom_dataset(**VERIFY_BASE)


@pytest.fixture
def broken(verify_base: Path, tmp_path: Path) -> Path:
    """A private copy of :func:`verify_base` for a test to break."""
    return Path(shutil.copytree(verify_base, tmp_path / "ds"))


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """``run_cli(*argv) -> (exit status, stdout, stderr)`` through ``autoseg.cli.main``."""

    def run(*argv: object) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
