"""The real CLI on real scans: a handful of MSD Hippocampus cases, read in place.

``../shared/data/Task04_Hippocampus_dev`` (next to the repository) holds 130 labelled MSD
Hippocampus scans. This test links eight of them into a temporary MSD folder (the images and
labels are read where they are; one label map is rewritten as float32 with integral values,
a quirk of the public release that must be accepted), then runs ``autoseg plan``, a short
``autoseg train`` of the U-Net on fold 0, ``autoseg predict`` on two scans it did not train
on, and ``autoseg evaluate`` against their labels. It skips, saying why, when the data is
not there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from autoseg.cli import main
from autoseg.data.imageio import read_image

pytestmark = pytest.mark.e2e
DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "Task04_Hippocampus_dev"
TRAIN, HELD_OUT = 8, 2
HEURISTICS = {  # a small network: the test is about the pipeline, not the Dice
    "cpu_unet_base_features": 8,
    "cpu_unet_max_features": 32,
    "cpu_deepmedic_feature_scale": 0.25,
}


@pytest.fixture(scope="module")
def hippocampus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A temporary MSD folder of :data:`TRAIN` linked cases, and the held-out case ids."""
    if not (DATA / "dataset.json").is_file():
        pytest.skip(f"the real Hippocampus data is not at {DATA} (../shared/data next to the repo)")
    full = json.loads((DATA / "dataset.json").read_text())
    entries = full["training"][: TRAIN + HELD_OUT]
    root = tmp_path_factory.mktemp("real") / "Task04_Hippocampus"
    for sub in ("imagesTr", "labelsTr"):
        (root / sub).mkdir(parents=True)
    for entry in entries[:TRAIN]:
        for key, sub in (("image", "imagesTr"), ("label", "labelsTr")):
            name = Path(entry[key]).name
            os.symlink(DATA / sub / name, root / sub / name)
    quirky = root / "labelsTr" / Path(entries[0]["label"]).name
    label = nib.load(quirky)
    values = np.asarray(label.dataobj, np.float32)
    quirky.unlink()  # a float32 copy replaces the link, the original stays untouched
    header = label.header.copy()
    header.set_data_dtype(np.float32)
    nib.save(nib.Nifti1Image(values, label.affine, header), quirky)
    assert nib.load(quirky).get_data_dtype() == np.float32
    dataset = {**full, "numTraining": TRAIN, "training": entries[:TRAIN]}
    (root / "dataset.json").write_text(json.dumps(dataset, indent=1))
    held_out = [Path(e["image"]).name[: -len(".nii.gz")] for e in entries[TRAIN:]]
    return root, held_out


def test_plan_train_predict_evaluate_on_real_scans(
    hippocampus: tuple[Path, list[str]], tmp_path: Path
) -> None:
    root, held_out = hippocampus
    work, heuristics = tmp_path / "work", tmp_path / "heuristics.json"
    heuristics.write_text(json.dumps(HEURISTICS))
    assert main(["plan", str(root), "--work", str(work), "--heuristics", str(heuristics)]) == 0
    plans = json.loads((work / "plans.json").read_text())
    assert plans["labels"] == {"background": 0, "Anterior": 1, "Posterior": 2}
    assert plans["configurations"]["unet3d"]["target_spacing"] == [1.0, 1.0, 1.0]
    train = ["train", "--work", str(work), "--config", "unet3d", "fold=0", "--epochs", "2"]
    train += ["--iters-per-epoch", "4", "--val-iters", "2", "-np", "0", "--threads", "1"]
    assert main(train) == 0
    summary = json.loads((work / "results/unet3d/fold_0/validation/summary.json").read_text())
    assert len({row["case"] for row in summary["metrics"]}) == 2  # 8 cases, 5 folds

    inputs, outputs, refs = tmp_path / "in", tmp_path / "out", tmp_path / "refs"
    inputs.mkdir()
    refs.mkdir()
    for case in held_out:  # predict's input naming: {case}_0000.nii.gz
        os.symlink(DATA / "imagesTr" / f"{case}.nii.gz", inputs / f"{case}_0000.nii.gz")
        os.symlink(DATA / "labelsTr" / f"{case}.nii.gz", refs / f"{case}.nii.gz")
    predict = ["predict", "-i", str(inputs), "-o", str(outputs), "--work", str(work)]
    assert main([*predict, "--config", "unet3d", "--folds", "0"]) == 0
    for case in held_out:
        image = nib.load(DATA / "imagesTr" / f"{case}.nii.gz")
        predicted = nib.load(outputs / f"{case}.nii.gz")
        assert predicted.shape == image.shape
        np.testing.assert_array_equal(predicted.affine, image.affine)
        labels, _ = read_image(outputs / f"{case}.nii.gz")
        assert set(np.unique(labels)) <= {0, 1, 2}
    scores = tmp_path / "scores"
    evaluate = ["evaluate", str(outputs), str(refs), "--out", str(scores), "-np", "1"]
    assert main([*evaluate, "--labels", "1", "2"]) == 0
    assert len((scores / "metrics.csv").read_text().splitlines()) == 1 + 2 * HELD_OUT
    result = json.loads((scores / "summary.json").read_text())
    assert "foreground_mean" in json.dumps(result)  # scored, whatever two epochs reached
