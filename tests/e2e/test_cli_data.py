"""The data commands end to end: ``demo-data`` -> ``verify`` -> ``demo``, in-process and as
real processes (console script and ``python -m autoseg``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autoseg.cli import main

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
SMALL = ["--cases", "3", "--test-cases", "1", "--shape", "16", "20", "20"]


def test_demo_data_then_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "Dataset001_Phantom"
    assert (
        main(
            [
                "demo-data",
                str(out),
                *SMALL,
                "--channels",
                "CT",
                "--roi",
                "--spacing",
                "aniso",
                "--cases-per-patient",
                "2",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.strip() == (
        f"wrote 3 training and 1 test cases (channels CT; labels 0 background, 1 lesion, "
        f"2 core, 3 satellite) to {out}"
    )
    assert main(["verify", str(out), "-np", "1"]) == 0
    report = capsys.readouterr().out
    assert "no problems found" in report and "3 training (2 patient groups), 1 test" in report
    assert main(["verify", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] and data["summary"]["channel_names"] == ["CT"]
    assert data["summary"]["spacing_range"][0][0] >= 3.0


def test_demo_data_refuses_a_non_empty_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ds"
    assert main(["demo-data", str(out), *SMALL]) == 0
    capsys.readouterr()
    assert main(["demo-data", str(out), *SMALL]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == f"autoseg: error: {out}: output folder is not empty; pass --overwrite to replace it\n"
    )
    assert main(["demo-data", str(out), *SMALL, "--overwrite", "--seed", "3"]) == 0
    assert main(["demo-data", str(tmp_path / "x"), "--spacing", "wide"]) == 2
    assert "invalid choice: 'wide'" in capsys.readouterr().err


def test_console_script_and_module_on_a_bad_dataset(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("autoseg")
    if not script.is_file():
        pytest.skip("the autoseg console script is not installed (pip install -e .)")
    helped = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False)
    assert helped.returncode == 0 and "verify" in helped.stdout and "demo-data" in helped.stdout
    out = tmp_path / "ds"
    assert main(["-q", "demo-data", str(out), *SMALL]) == 0
    label = out / "labelsTr" / "phantom_001.nii.gz"
    shutil.copy(out / "imagesTr" / "phantom_001_0000.nii.gz", label)  # float image as labels
    result = subprocess.run(
        [sys.executable, "-m", "autoseg", "verify", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert lines[0].startswith(f"autoseg: error: phantom_001 {label}: label map holds non-integer")
    assert "1 problem(s) found" in result.stdout
