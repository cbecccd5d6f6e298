"""A read-only or full disk is one line naming the path (exit 2), never an OSError traceback,
and leaves nothing half-written: plan, demo-data, evaluate, show (predict, export-model and
train are tested with their workspaces)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from autoseg.cli import main

pytestmark = pytest.mark.e2e
RunCli = Callable[..., tuple[int, str, str]]
SMALL = {"num_train_cases": 3, "num_test_cases": 1, "base_shape": (16, 20, 20), "seed": 11}


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> RunCli:
    def run(*argv: object) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def _one_error(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("autoseg: error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def small(phantom_dataset: Callable[..., Path]) -> Path:
    return phantom_dataset(**SMALL)


def test_commands_writing_into_a_read_only_folder(
    small: Path, tmp_path: Path, read_only: Callable[[Path], Path], run_cli: RunCli
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    read_only(locked)
    image = small / "imagesTr" / "phantom_000_0000.nii.gz"
    cases: list[tuple[list[object], Path, str]] = [
        (["plan", small, "--work", locked / "w", "--device", "cpu"], locked / "w", "folder"),
        (["demo-data", locked / "d", "--cases", "1", "--test-cases", "0"], locked / "d", "folder"),
        (["evaluate", small / "labelsTr", small / "labelsTr", "--out", locked / "e"], locked / "e",
         "folder"),
        (["evaluate", small / "labelsTr", small / "labelsTr", "--out", locked], locked, "write"),
        (["show", image, "--out", locked / "x.png"], locked / "x.png", "write"),
    ]  # fmt: skip
    for argv, path, what in cases:
        code, out, err = run_cli(*argv)
        line = _one_error(err)
        assert code == 2, argv
        assert line.startswith(f"autoseg: error: {path}: cannot "), line
        assert ("create the folder" if what == "folder" else "write") in line
        assert "evaluated" not in out  # nothing scored before the output is known writable
    assert list(locked.iterdir()) == []


def test_a_folder_where_a_file_is_and_the_other_way_round(
    small: Path, tmp_path: Path, run_cli: RunCli
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, _, err = run_cli("plan", small, "--work", blocker / "w", "--device", "cpu")
    assert code == 2
    assert _one_error(err) == (
        f"autoseg: error: {blocker / 'w'}: cannot create the folder: a file is in the way"
    )
    image = small / "imagesTr" / "phantom_000_0000.nii.gz"
    folder = tmp_path / "picture.png"
    folder.mkdir()
    code, _, err = run_cli("show", image, "--out", folder)
    assert code == 2 and _one_error(err).startswith(f"autoseg: error: {folder}: cannot write")


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 400 KiB file system (tmpfs; needs root), to fill up for real."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root): the full disk is untested")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_plan_onto_a_full_disk(
    phantom_dataset: Callable[..., Path], tiny_disk: Path, run_cli: RunCli
) -> None:
    dataset = phantom_dataset(num_train_cases=6, num_test_cases=0, base_shape=(32, 40, 40))
    work = tiny_disk / "w"
    code, _, err = run_cli("plan", dataset, "--work", work, "--device", "cpu", "-np", "1")
    line = _one_error(err)
    assert code == 2 and line.startswith(f"autoseg: error: {work}/")
    assert "cannot write (No space left on device; free some space or write elsewhere)" in line
    assert not [p for p in tiny_disk.rglob(".tmp-*")]  # nothing half-written left
    shutil.rmtree(work)
