"""``autoseg predict`` against hostile or unlucky input: case ids that would write outside
``-o``, an output that is a file, a folder it cannot write, leftovers of killed runs, NaN
options, and the modes of what it writes."""

from __future__ import annotations

import gzip
import os
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from autoseg.cli import main
from autoseg.processes import host_tag
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


def _errors(err: str) -> list[str]:
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("autoseg: error:")]


def test_output_that_is_a_file_or_cannot_be_written(
    trained: Workspace, test_images: Path, tmp_path: Path, read_only: Callable[[Path], Path],
    run_cli: RunCli,
) -> None:  # fmt: skip
    a_file = tmp_path / "out.nii.gz"
    a_file.write_bytes(b"")
    code, _, err = _predict(run_cli, trained, test_images, a_file)
    assert code == 2 and _errors(err) == [
        f"autoseg: error: {a_file}: OUTPUT is a file; give a folder (it is created if needed) "
        "(see 'autoseg predict --help')"
    ]
    locked = tmp_path / "locked"
    locked.mkdir()
    read_only(locked)
    for out, what in ((locked / "new" / "sub", "create the folder"), (locked, "write into")):
        code, _, err = _predict(run_cli, trained, test_images, out)
        [line] = _errors(err)
        named = out if what == "write into" else locked / "new"
        assert code == 2 and line.startswith(f"autoseg: error: {named}: cannot {what}")
        assert "predicting" not in err  # refused before any case ran
    code, _, err = run_cli(
        "export-model", "--work", trained.root, "--config", "unet3d", "--out", locked / "m.zip"
    )
    assert code == 2 and _errors(err)[0].startswith(f"autoseg: error: {locked / 'm.zip'}: cannot")


@pytest.fixture(params=[0o022, 0o027])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def test_predictions_honour_the_umask_and_leftovers_are_removed(
    trained: Workspace, test_images: Path, tmp_path: Path, run_cli: RunCli, umask: int
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = out / f".tmp-{host_tag()}-{dead.pid}-89abcdef-phantom_006.nii.gz"
    leftover.write_bytes(b"half a prediction")
    code, _, _ = _predict(run_cli, trained, test_images, out, "--save-probabilities")
    assert code == 0 and not leftover.exists()
    written = sorted(p for p in out.iterdir())
    assert [p.suffix for p in written] == [".gz", ".npz", ".gz", ".npz"]
    for path in written:  # mkstemp made them 0600 whatever the umask
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path.name


def test_an_input_with_a_broken_affine_is_not_copied_into_a_prediction(
    trained: Workspace, test_images: Path, tmp_path: Path, run_cli: RunCli
) -> None:
    first = sorted(test_images.glob("*_0000.nii.gz"))[0]
    case = first.name[: -len("_0000.nii.gz")]
    dtype = nib.Nifti1Header.template_dtype
    for path in sorted(test_images.glob(f"{case}_*.nii.gz")):
        raw = bytearray(gzip.decompress(path.read_bytes()))
        srow = nib.load(path).header["srow_z"].copy()
        srow[2] = np.nan  # nibabel cannot write such a file: patch the header's bytes
        for name, value in (("srow_z", srow), ("qform_code", 0)):
            sub, offset = dtype.fields[name][:2]  # type: ignore[index]
            raw[offset : offset + sub.itemsize] = np.asarray(value, dtype=sub.base).tobytes()
        path.write_bytes(gzip.compress(bytes(raw)))
    out = tmp_path / "out"
    code, _, err = _predict(run_cli, trained, test_images, out)
    assert code == 2 and "Traceback" not in err
    assert f"{case} {first}: the header's affine holds NaN or infinite values" in err
    assert not (out / f"{case}.nii.gz").exists() and len(list(out.glob("*.nii.gz"))) == 1
