"""Damaged preprocessed files are not trusted: ``plan`` redoes the damaged case, ``train``
refuses before it touches a fold (``--overwrite`` included), and loading names the file.
(Before the digests, a truncated ``<case>.npy`` or ``<case>_locs.npz`` left plan saying
"up to date", and train then crashed with BadZipFile, after deleting the fold.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoseg.cli import main
from autoseg.errors import DatasetError
from autoseg.planner.plans import load_plans
from autoseg.preprocessing.store import case_damage, load_preprocessed_case
from autoseg.workspace import Workspace

FAST = ["--epochs", "1", "--iters-per-epoch", "1", "--val-iters", "1", "-np", "0"]
FAST += ["--threads", "1", "--no-validation", "--device", "cpu", "--config", "unet3d"]


def _data_dir(workspace: Workspace) -> Path:
    plans = load_plans(workspace.plans_json)
    return workspace.preprocessed_dir(plans.configuration("unet3d").data_identifier)


def _dataset(workspace: Workspace) -> str:
    return str(json.loads(workspace.source_json.read_text())["dataset"])


@pytest.mark.parametrize("suffix", [".npy", "_locs.npz", "_seg.npy"])
def test_a_truncated_file_is_refused_by_train_and_redone_by_plan(
    suffix: str, planned: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = _data_dir(planned)
    case_id = sorted(p.stem for p in data_dir.glob("*.json"))[1]
    damaged = data_dir / f"{case_id}{suffix}"
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    fold = planned.fold_dir("unet3d", 0)
    fold.mkdir(parents=True)
    (fold / "checkpoint_final.pt").write_bytes(b"an earlier run's weights")
    capsys.readouterr()
    train = ["train", "--work", str(planned.root), "fold=0", *FAST]
    assert main([*train, "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    [line] = [line for line in err.splitlines() if "error" in line]
    assert line.startswith(f"autoseg: error: {case_id} {data_dir}: preprocessed case is damaged")
    assert f"{damaged.name}: size is" in line and "run 'autoseg plan' again" in line
    assert (fold / "checkpoint_final.pt").read_bytes() == b"an earlier run's weights"

    plan = ["plan", _dataset(planned), "--work", str(planned.root), "--device", "cpu"]
    heuristics = json.loads(planned.plans_json.read_text())["heuristics"]
    overrides = planned.root / "h.json"
    overrides.write_text(json.dumps(heuristics))
    assert main([*plan, "--heuristics", str(overrides), "-np", "1"]) == 0
    captured = capsys.readouterr()
    assert f"preprocessed case {case_id} is damaged ({damaged.name}: size is" in captured.err
    assert "1 new, 5 up to date" in captured.out
    assert case_damage(data_dir, case_id) is None
    assert main([*train, "--overwrite"]) == 0


def test_same_size_damage_is_found_by_the_digest(planned: Workspace) -> None:
    data_dir = _data_dir(planned)
    case_id = sorted(p.stem for p in data_dir.glob("*.json"))[0]
    image = data_dir / f"{case_id}.npy"
    data = bytearray(image.read_bytes())
    data[-8:] = bytes(8)  # a zeroed tail, as a crashed file system leaves one
    image.write_bytes(bytes(data))
    assert case_damage(data_dir, case_id) == (
        f"{image.name}: content differs from what was written (SHA-256)"
    )
    (data_dir / f"{case_id}_locs.npz").write_bytes(b"PK")
    with pytest.raises(DatasetError, match=r"_locs.npz: size is 2 bytes"):
        load_preprocessed_case(data_dir, case_id)
