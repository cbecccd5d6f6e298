"""Region-based training with the ignore label, end to end through the CLI, on a BraTS-like
phantom (nested regions, sparse slices): plan -> train both families on a user's one-fold
split -> find-best -> predict -> evaluate."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from autoseg.cli import main
from autoseg.data.imageio import read_image
from autoseg.workspace import Workspace

pytestmark = pytest.mark.e2e
FAST = ["--epochs", "2", "--iters-per-epoch", "2", "--val-iters", "1", "-np", "0"]
REGIONS = ["whole tumour", "tumour core", "enhancing tumour"]


@pytest.fixture
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_thread")
def test_regions_and_ignore_label_through_every_step(
    phantom_dataset: Callable[..., Path],
    small_heuristics: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dataset = phantom_dataset(
        num_train_cases=4, num_test_cases=1, base_shape=(16, 20, 20), spacing="iso",
        channels=("FLAIR", "T1", "T1CE", "T2"), nested_classes=3, rare_class=False,
        regions=True, sparse_slices=2, seed=3,
    )  # fmt: skip
    work = tmp_path / "work"
    plan = ["plan", dataset, "--work", work, "--heuristics", small_heuristics, "--device", "cpu"]
    assert main([str(a) for a in plan] + ["-np", "1"]) == 0
    ws = Workspace(work)
    split = [{"train": ["phantom_000", "phantom_001", "phantom_002"], "val": ["phantom_003"]}]
    ws.splits_json.write_text(json.dumps(split))  # nnU-Net's splits_final.json form
    capsys.readouterr()
    assert main(["train", "--work", str(work), *FAST]) == 0  # every fold of the split
    assert capsys.readouterr().out.count("trained") == 3  # unet3d, unet2d, deepmedic
    assert json.loads(ws.splits_json.read_text()) == split  # honoured, never replaced
    for config in ("unet3d", "deepmedic"):
        _check_fold(ws, config)
    assert main(["find-best", "--work", str(work), "--bootstrap", "50", "-np", "1"]) == 0
    report = capsys.readouterr().out
    assert all(region in report for region in REGIONS)
    for config in ("unet3d", "deepmedic"):
        cv = json.loads((ws.config_dir(config) / "cv_summary.json").read_text())
        assert cv["labels"] == [] and list(cv["regions"]) == REGIONS
    best = json.loads(ws.best_json.read_text())
    candidate = best["candidates"][0]
    assert candidate["per_class"] == {} and list(candidate["per_region"]) == REGIONS
    assert best["folds"] == [0] and best["postprocessing"] == {}
    out_dir = tmp_path / "pred"
    predict = ["predict", "-i", str(dataset / "imagesTs"), "-o", str(out_dir), "--work", str(work)]
    assert main([*predict, "--no-tta", "--threads", "1", "-np", "0"]) == 0
    labels, _ = read_image(out_dir / "phantom_004.nii.gz")
    assert set(np.unique(labels).tolist()) <= {0, 1, 2, 3}  # never the ignore label
    evaluate = ["evaluate", str(out_dir), str(dataset / "labelsTs")]
    assert main([*evaluate, "--dataset-json", str(dataset / "dataset.json"), "-np", "1"]) == 0
    summary = json.loads((out_dir / "summary.json").read_text())
    assert list(summary["targets"]) == REGIONS


def _check_fold(ws: Workspace, config: str) -> None:
    fold = ws.fold_paths(config, 0)
    lines = [json.loads(line) for line in fold.log.read_text().splitlines()]
    assert all(len(line["pseudo_dice"]) == 3 for line in lines)  # one per region
    assert not ws.fold_dir(config, 1).exists()
    probabilities = np.load(fold.validation / "phantom_003.npz")["probabilities"]
    labels, _ = read_image(fold.validation / "phantom_003.nii.gz")
    assert probabilities.shape == (3, *labels.shape)  # region sigmoids, no background
    assert set(np.unique(labels).tolist()) <= {0, 1, 2, 3}
    painted = np.zeros(labels.shape, dtype=np.uint8)
    for value, channel in zip((1, 2, 3), probabilities.astype(np.float32)):
        painted[channel > 0.5] = value
    clear = (np.abs(probabilities.astype(np.float32) - 0.5) > 1e-2).all(0)  # float16 ties
    assert clear.mean() > 0.5 and (painted == labels)[clear].all()  # painted in order
    summary = json.loads((fold.validation / "summary.json").read_text())["summary"]
    assert list(summary["targets"]) == REGIONS
