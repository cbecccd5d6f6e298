"""What a file named by a dataset turns out to be, said precisely: a device, a folder, a
symbolic link loop or a dangling link (all of these were once "file not found", and a
dangling image link only "label map has no images")."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

RunCli = Callable[..., tuple[int, str, str]]
CASE = "phantom_002"


def _errors(run_cli: RunCli, root: Path) -> list[str]:
    code, _, err = run_cli("verify", root, "-np", "1")
    assert code == 2 and "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("autoseg: error:")]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p.symlink_to("/dev/zero"), "is not a regular file (a device, pipe or socket)"),
        (lambda p: p.mkdir(), "is a folder, not an image file"),
        (lambda p: p.symlink_to(p.name), "symbolic link loop (the link points back at itself)"),
        (lambda p: p.symlink_to("gone.nii.gz"), "symbolic link to 'gone.nii.gz', which does not"),
    ],
)
def test_a_label_that_is_no_file(
    make: Callable[[Path], None], expected: str, broken: Path, run_cli: RunCli
) -> None:
    label = broken / "labelsTr" / f"{CASE}.nii.gz"
    label.unlink()
    make(label)
    [line] = _errors(run_cli, broken)
    assert line.startswith(f"autoseg: error: {CASE} {label}: {expected}")


def test_a_dangling_image_link_is_named(broken: Path, run_cli: RunCli) -> None:
    image = broken / "imagesTr" / f"{CASE}_0001.nii.gz"
    image.unlink()
    os.symlink(broken / "elsewhere" / "moved.nii.gz", image)
    lines = _errors(run_cli, broken)
    assert lines == [
        f"autoseg: error: {CASE} {image}: symbolic link to "
        f"'{broken / 'elsewhere' / 'moved.nii.gz'}', which does not exist"
    ]
    image.unlink()
    other = broken / "imagesTr" / f"{CASE}_0000.nii.gz"
    other.unlink()
    os.symlink("nowhere_0000.nii.gz", other)  # the case's only listed file is dangling too
    assert not any("has no images" in line for line in _errors(run_cli, broken))
