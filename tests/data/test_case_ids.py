"""Case ids that cannot name files are refused by every dataset reader, so ``plan`` never
writes outside the workspace (a manifest's ``case`` of ``../../x`` once wrote ``x.npy``
two folders up)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from autoseg.data.formats import load_dataset, read_dataset
from autoseg.errors import DatasetError

RunCli = Callable[..., tuple[int, str, str]]


def _manifest(folder: Path, dataset: Path, first_id: str) -> Path:
    rows = ["case,T1,FLAIR,label"]
    for index in range(3):
        case = first_id if index == 0 else f"c{index}"
        images = dataset / "imagesTr"
        rows.append(
            f"{case},{images}/phantom_00{index}_0000.nii.gz,{images}/phantom_00{index}_0001.nii.gz,"
            f"{dataset}/labelsTr/phantom_00{index}.nii.gz"
        )
    path = folder / "m.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("bad", ["../../x", "/abs/path/x", "x\ty", ".x"])
def test_plan_refuses_a_manifest_case_id_that_escapes(
    bad: str, verify_base: Path, tmp_path: Path, run_cli: RunCli
) -> None:
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    csv = _manifest(deep, verify_base, bad)
    code, _, err = run_cli("plan", csv, "--work", deep / "work", "--device", "cpu", "-np", "1")
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"autoseg: error: {csv}: row 2: case id ")
    assert not list(tmp_path.rglob("x*")) and not Path("/abs").exists()
    assert not (deep / "work").exists()  # nothing half-written either


def test_verify_lists_the_bad_id_once_and_keeps_the_other_cases(
    verify_base: Path, tmp_path: Path
) -> None:
    result = read_dataset(_manifest(tmp_path, verify_base, "../x"))
    assert result.dataset is not None
    assert [c.case_id for c in result.dataset.cases] == ["c1", "c2"]
    assert [p.check for p in result.problems] == ["case_id"]
    assert "holds a path separator" in str(result.problems[0])


def test_nnunet_and_msd_file_names_with_control_characters(
    verify_base: Path, tmp_path: Path
) -> None:
    nnunet = Path(shutil.copytree(verify_base, tmp_path / "nn"))
    for suffix in ("_0000.nii.gz", "_0001.nii.gz"):
        (nnunet / "imagesTr" / f"phantom_000{suffix}").rename(
            nnunet / "imagesTr" / f"bad\nname{suffix}"
        )
    (nnunet / "labelsTr" / "phantom_000.nii.gz").rename(nnunet / "labelsTr" / "bad\nname.nii.gz")
    with pytest.raises(DatasetError, match="control character") as raised:
        load_dataset(nnunet)
    assert "\n" not in str(raised.value)
    msd = tmp_path / "msd"
    (msd / "imagesTr").mkdir(parents=True)
    (msd / "dataset.json").write_text(
        json.dumps(
            {
                "modality": {"0": "T1"},
                "labels": {"0": "background", "1": "lesion"},
                "training": [{"image": "./imagesTr/a\x01b.nii.gz", "label": "./labelsTr/x.nii.gz"}],
            }
        )
    )
    problems = read_dataset(msd).problems
    assert any(p.check == "case_id" and "control character" in p.message for p in problems)
