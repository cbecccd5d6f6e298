"""The workspace names every path: fold folders, their files, checkpoints, the fold count."""

from __future__ import annotations

from pathlib import Path

from autoseg.workspace import CHECKPOINT_NAMES, FOLD_NAMES, NUM_FOLDS, FoldPaths, Workspace


def test_fold_layout(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    fold = ws.fold_paths("unet3d", 2)
    assert fold == FoldPaths(tmp_path / "results" / "unet3d" / "fold_2")
    assert fold.root == ws.fold_dir("unet3d", 2)
    assert [fold.checkpoint(n).name for n in CHECKPOINT_NAMES] == [
        "checkpoint_latest.pt",
        "checkpoint_best.pt",
        "checkpoint_final.pt",
    ]
    assert ws.checkpoint_path("unet3d", "all", "final") == (
        tmp_path / "results" / "unet3d" / "fold_all" / "checkpoint_final.pt"
    )
    names = (fold.log, fold.progress_png, fold.train_config, fold.validation, fold.tensorboard)
    assert [p.name for p in names] == [
        "log.jsonl",
        "progress.png",
        "train_config.json",
        "validation",
        "tensorboard",
    ]


def test_five_folds_and_fold_all() -> None:
    assert NUM_FOLDS == 5
    assert FOLD_NAMES == (0, 1, 2, 3, 4, "all")


def test_numbered_fold_dirs_skip_fold_all_and_files(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    assert ws.numbered_fold_dirs("unet3d") == []
    for fold in (3, 0, "all"):
        ws.fold_dir("unet3d", fold).mkdir(parents=True)
    (ws.config_dir("unet3d") / "fold_x").mkdir()
    assert ws.numbered_fold_dirs("unet3d") == [ws.fold_dir("unet3d", 0), ws.fold_dir("unet3d", 3)]
