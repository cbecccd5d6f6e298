"""A trained workspace against unlucky commands: planning another dataset into it (which once
replaced its plans silently), a read-only results folder, leftovers of killed runs, and
JSON nested too deeply to parse (once a RecursionError traceback)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from autoseg.cli import main
from autoseg.planner.plans import load_plans
from autoseg.processes import host_tag
from autoseg.workspace import Workspace

FAST = ["--epochs", "1", "--iters-per-epoch", "1", "--val-iters", "1", "-np", "0"]
FAST += ["--threads", "1", "--no-validation", "--device", "cpu", "--config", "unet3d"]


def _errors(capsys: pytest.CaptureFixture[str]) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("autoseg: error:")]


def _dataset(workspace: Workspace) -> Path:
    return Path(json.loads(workspace.source_json.read_text())["dataset"])


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_planning_another_dataset_into_a_trained_workspace(
    planned: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--work", str(planned.root), "fold=all", *FAST]) == 0
    other = Path(shutil.copytree(_dataset(planned), tmp_path / "other_dataset"))
    before = planned.plans_json.read_bytes()
    plan = ["plan", str(other), "--work", str(planned.root), "--device", "cpu", "-np", "1"]
    capsys.readouterr()
    assert main(plan) == 2
    [line] = _errors(capsys)
    assert line == (
        f"autoseg: error: {planned.root}: holds 1 fold(s) trained on {_dataset(planned)}; "
        f"planning {other.resolve()} here would replace their plans. Plan into another --work, "
        "or pass --overwrite to delete results/, splits.json and best.json and plan the new "
        "dataset"
    )
    assert planned.plans_json.read_bytes() == before
    assert main([*plan, "--overwrite"]) == 0
    assert not planned.results_dir.exists() and _dataset(planned) == other.resolve()
    again = ["plan", str(_dataset(planned)), "--work", str(planned.root), "--device", "cpu"]
    assert main(again) == 0  # the same dataset again: nothing to refuse


def test_train_into_a_read_only_results_folder(
    planned: Workspace, read_only: Callable[[Path], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    planned.results_dir.mkdir()
    read_only(planned.results_dir)
    capsys.readouterr()
    assert main(["train", "--work", str(planned.root), "fold=all", *FAST]) == 2
    [line] = _errors(capsys)
    assert line.startswith(f"autoseg: error: {planned.results_dir / 'unet3d'}: cannot create")


def test_leftovers_of_killed_runs_are_removed_by_the_next_run(
    planned: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    plans = load_plans(planned.plans_json)
    data_dir = planned.preprocessed_dir(plans.configuration("unet3d").data_identifier)
    fold = planned.fold_dir("unet3d", "all")
    fold.mkdir(parents=True)
    dead = _dead_pid()
    leftovers = [
        data_dir / f".tmp-{host_tag()}-{dead}-0a1b2c3d-phantom_000.npy",
        planned.root / f".tmp-{host_tag()}-{dead}-0a1b2c3d-plans.json",
        fold / f".tmp-{host_tag()}-{dead}-0a1b2c3d-checkpoint_latest.pt",
    ]
    for path in leftovers:
        path.write_bytes(b"half-written")
    heuristics = planned.root / "h.json"
    heuristics.write_text(json.dumps(json.loads(planned.plans_json.read_text())["heuristics"]))
    plan = ["plan", str(_dataset(planned)), "--work", str(planned.root), "--device", "cpu"]
    assert main([*plan, "--heuristics", str(heuristics)]) == 0
    assert [p.exists() for p in leftovers] == [False, False, True]  # train cleans its fold
    assert main(["train", "--work", str(planned.root), "fold=all", *FAST]) == 0
    assert not leftovers[2].exists()
    assert not list(planned.root.rglob(".tmp-*"))


@pytest.mark.parametrize("where", ["dataset.json", "--heuristics"])
def test_json_nested_too_deeply(
    where: str, planned: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nested = "[" * 100_000 + "]" * 100_000
    dataset = Path(shutil.copytree(_dataset(planned), tmp_path / "ds"))
    plan = ["plan", str(dataset), "--work", str(tmp_path / "w"), "--device", "cpu"]
    if where == "dataset.json":
        (dataset / "dataset.json").write_text('{"labels": ' + nested + "}")
        expected = f"{dataset / 'dataset.json'}: invalid JSON: nested too deeply to parse"
    else:
        (tmp_path / "h.json").write_text(nested)
        plan += ["--heuristics", str(tmp_path / "h.json")]
        expected = f"{tmp_path / 'h.json'}: heuristics file is not valid JSON: nested too deeply"
    capsys.readouterr()
    assert main(plan) == 2
    [line] = _errors(capsys)
    assert line.startswith(f"autoseg: error: {expected}")
