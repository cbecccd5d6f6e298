"""Model archives: what export-model packs, and how opening one guards against bad zips."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from autoseg.errors import CheckpointError, InputError
from autoseg.inference.checkpoint import load_checkpoint
from autoseg.inference.model_archive import MANIFEST_NAME, export_model, extract_model
from autoseg.planner.plans import Plans, load_plans
from autoseg.workspace import Workspace

BEST = {"configs": ["unet3d"], "folds": [0, 1], "postprocessing": {"1": True}}


def test_export_then_extract_round_trip(
    tmp_path: Path, planned: tuple[Path, Plans], workspace_factory: Callable[..., Workspace]
) -> None:
    plans = planned[1]
    ws = workspace_factory(tmp_path / "w", plans, best=BEST)
    summary = export_model(ws, tmp_path / "model.zip")
    assert summary.configs == ("unet3d", "deepmedic") and summary.has_best
    with zipfile.ZipFile(tmp_path / "model.zip") as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read(MANIFEST_NAME))
    assert {"plans.json", "best.json", "results/unet3d/fold_1/checkpoint_final.pt"} <= names
    assert manifest["folds"] == {"unet3d": [0, 1], "deepmedic": [0, 1]}
    assert set(manifest["files"]) == names - {MANIFEST_NAME}
    out = extract_model(tmp_path / "model.zip", tmp_path / "x")
    assert load_plans(out.plans_json) == plans
    original = load_checkpoint(ws.fold_dir("unet3d", 1) / "checkpoint_final.pt")
    extracted = load_checkpoint(out.fold_dir("unet3d", 1) / "checkpoint_final.pt")
    assert "optimizer" in original.raw and "optimizer" not in extracted.raw
    for key, value in original.raw["model"].items():
        torch.testing.assert_close(extracted.raw["model"][key], value)


def test_export_subsets_and_best_json_only_when_complete(
    tmp_path: Path, planned: tuple[Path, Plans], workspace_factory: Callable[..., Workspace]
) -> None:
    ws = workspace_factory(tmp_path / "w", planned[1], best=BEST)
    summary = export_model(ws, tmp_path / "dm.zip", config="deepmedic", folds=[1])
    assert summary.folds == {"deepmedic": [1]} and not summary.has_best
    best = export_model(ws, tmp_path / "best.zip", config="best")
    assert best.configs == ("unet3d",) and best.has_best
    assert "unet3d folds [0, 1]" in best.describe()
    empty = workspace_factory(tmp_path / "empty", planned[1], folds={})
    with pytest.raises(CheckpointError, match="no configuration has a trained fold"):
        export_model(empty, tmp_path / "none.zip")
    assert not (tmp_path / "none.zip").exists()


def write_zip(path: Path, entries: dict[str, bytes], manifest: dict | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        if manifest is not None:
            archive.writestr(MANIFEST_NAME, json.dumps(manifest))
    return path


def manifest_for(files: dict[str, str]) -> dict:
    return {"format": "autoseg-model", "schema_version": 1, "files": files}


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil", "results/../../evil"])
def test_zip_slip_entries_are_refused(tmp_path: Path, name: str) -> None:
    path = write_zip(tmp_path / "m.zip", {name: b"x"}, manifest_for({"plans.json": "0"}))
    with pytest.raises(InputError, match="unsafe entry"):
        extract_model(path, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


def test_symlinks_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.zip"
    with zipfile.ZipFile(path, "w") as archive:
        link = zipfile.ZipInfo("plans.json")
        link.external_attr = 0o120777 << 16
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(InputError, match="symbolic link"):
        extract_model(path, tmp_path / "out")


def test_corruption_and_non_archives(tmp_path: Path) -> None:
    bad_digest = write_zip(
        tmp_path / "a.zip", {"plans.json": b"{}"}, manifest_for({"plans.json": "0" * 64})
    )
    with pytest.raises(InputError, match=r"plans\.json is corrupted"):
        extract_model(bad_digest, tmp_path / "a")
    no_manifest = write_zip(tmp_path / "b.zip", {"plans.json": b"{}"})
    with pytest.raises(InputError, match="not an autoseg model archive"):
        extract_model(no_manifest, tmp_path / "b")
    (tmp_path / "c.zip").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a valid zip file"):
        extract_model(tmp_path / "c.zip", tmp_path / "c")
    with pytest.raises(InputError, match="model archive not found"):
        extract_model(tmp_path / "missing.zip", tmp_path / "d")
    old = write_zip(tmp_path / "e.zip", {}, {**manifest_for({}), "schema_version": 99})
    with pytest.raises(InputError, match="schema_version 99"):
        extract_model(old, tmp_path / "e")
