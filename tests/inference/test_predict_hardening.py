"""``autoseg predict`` against hostile or unlucky input: case ids that would write outside
``-o``, an output that is a file, a folder it cannot write, leftovers of killed runs, NaN
options, and the modes of what it writes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from autoseg.cli import main
from autoseg.workspace import Workspace

RunCli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> RunCli:
    def run(*argv: object) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def _predict(
    run_cli: RunCli, work: Workspace, inputs: Path, out: Path, *extra: object
) -> tuple[int, str, str]:
    return run_cli(
        "predict", "-i", inputs, "-o", out, "--work", work.root, "--config", "unet3d",
        "--folds", "0", "--no-tta", "--threads", "1", "-np", "0", *extra,
    )  # fmt: skip


@pytest.mark.parametrize("bad", ["../../x", "/abs/elsewhere/x"])
def test_a_manifest_case_id_cannot_write_outside_the_output(
    bad: str, trained: Workspace, test_images: Path, tmp_path: Path, run_cli: RunCli
) -> None:
    csv = tmp_path / "cases.csv"
    first = sorted(test_images.glob("*_0000.nii.gz"))[0]
    second = first.with_name(first.name.replace("_0000", "_0001"))
    csv.write_text(f"case,T1,FLAIR\n{bad},{first},{second}\n")
    out = tmp_path / "out" / "a" / "b"
    code, _, err = _predict(run_cli, trained, csv, out)
    assert code == 2 and "Traceback" not in err
    assert [line for line in err.splitlines() if "error" in line] == [
        f"autoseg: error: {csv}: row 2: case id {bad!r} holds a path separator; case ids must "
        "be plain file names"
    ]
    assert not list(tmp_path.rglob("x.nii.gz")) and not Path("/abs").exists()
