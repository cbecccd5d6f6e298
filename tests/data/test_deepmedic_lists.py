"""DeepMedic list files read directly through a JSON descriptor (train, validation, test)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from autoseg.data.case_io import load_case
from autoseg.data.formats import detect_format, load_dataset, read_dataset
from autoseg.data.imageio import read_image, write_image
from autoseg.errors import DatasetError

SPLITS = {"train": [0, 1], "validation": [2], "test": [3]}
RunCli = Callable[..., tuple[int, str, str]]


def write_lists(phantom: Path, root: Path, *, names: bool = True) -> Path:
    """DeepMedic's example layout: per-channel lists, labels, ROI masks (stored as
    0.99999997, as DeepMedic's brain masks are), validation and test lists."""

    def case(i: int) -> str:
        return f"phantom_{i:03d}"

    def split_dir(index: int) -> str:
        return "Tr" if index < 3 else "Ts"

    folders = {"train": root / "train", "validation": root / "train" / "validation"}
    folders["test"] = root / "test"
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    for split, indices in SPLITS.items():
        prefix = {"train": "train", "validation": "validation", "test": "test"}[split]
        folder = folders[split]
        for channel, name in enumerate(("flair", "t1c")):
            rows = [str(phantom / f"images{split_dir(i)}" / f"{case(i)}_{channel:04d}.nii.gz")
                    for i in indices]  # fmt: skip
            (folder / f"{prefix}Channels_{name}.cfg").write_text("\n".join(rows) + "\n")
        labels = [f"../../ds/labels{split_dir(i)}/{case(i)}.nii.gz" for i in indices]
        if split == "validation":
            labels = [f"../../../ds/labels{split_dir(i)}/{case(i)}.nii.gz" for i in indices]
        (folder / f"{prefix}GtLabels.cfg").write_text("# labels\n\n" + "\n".join(labels))
        masks = []
        for i in indices:
            roi, geometry = read_image(phantom / f"rois{split_dir(i)}" / f"{case(i)}.nii.gz")
            path = folder / f"mask_{case(i)}.nii.gz"
            write_image(path, (roi * np.float32(0.99999997)).astype(np.float32), geometry)
            masks.append(path.name)
        (folder / f"{prefix}RoiMasks.cfg").write_text("\n".join(masks))
        if names and split != "train":
            outputs = [f"pred_{case(i)}.nii.gz" for i in indices]
            (folder / f"{prefix}NamesOfPredictions.cfg").write_text("\n".join(outputs))
    descriptor = {
        "channelsTraining": ["train/trainChannels_flair.cfg", "train/trainChannels_t1c.cfg"],
        "gtLabelsTraining": "train/trainGtLabels.cfg",
        "roiMasksTraining": "train/trainRoiMasks.cfg",
        "channelsValidation": [
            "train/validation/validationChannels_flair.cfg",
            "train/validation/validationChannels_t1c.cfg",
        ],
        "gtLabelsValidation": "train/validation/validationGtLabels.cfg",
        "roiMasksValidation": "train/validation/validationRoiMasks.cfg",
        "channelsTest": ["test/testChannels_flair.cfg", "test/testChannels_t1c.cfg"],
        "roiMasksTest": "test/testRoiMasks.cfg",
    }
    if names:
        descriptor["namesForPredictionsPerCaseVal"] = (
            "train/validation/validationNamesOfPredictions.cfg"
        )
        descriptor["namesForPredictionsPerCaseTest"] = "test/testNamesOfPredictions.cfg"
    path = root / "deepmedic.json"
    path.write_text(json.dumps(descriptor, indent=2))
    return path


@pytest.fixture
def lists(broken: Path, tmp_path: Path) -> Path:
    return write_lists(broken, tmp_path / "dm")


def test_lists_become_a_dataset_with_a_fixed_validation_fold(lists: Path, broken: Path) -> None:
    assert detect_format(lists) == "deepmedic"
    ds = load_dataset(lists)
    assert ds.format == "deepmedic" and ds.channel_names == ("flair", "t1c")
    assert [c.case_id for c in ds.cases] == ["phantom_000", "phantom_001", "pred_phantom_002"]
    assert ds.validation_folds == (("pred_phantom_002",),)
    (test,) = ds.test_cases
    assert test.case_id == "pred_phantom_003" and test.label is None and test.roi is not None
    assert ds.cases[0].channels[1] == broken / "imagesTr" / "phantom_000_0001.nii.gz"
    assert ds.cases[0].label == lists.parent / "train" / "../../ds/labelsTr/phantom_000.nii.gz"
    assert dict(ds.labels) == {"background": 0, "label_1": 1, "label_2": 2, "label_3": 3}
    roi, _ = read_image(broken / "roisTr" / "phantom_001.nii.gz")
    arrays = load_case(ds.cases[1], ds)  # masks of 0.99999997 are inside (> 0)
    assert arrays.roi is not None and np.array_equal(arrays.roi, roi > 0)
    assert not read_dataset(lists).problems


def test_declared_labels_names_and_case_ids_without_names(lists: Path, tmp_path: Path) -> None:
    data = json.loads(lists.read_text())
    data.update(
        name="Lesions",
        channel_names=["FLAIR", "T1c"],
        labels={"background": 0, "lesion": 1, "core": 2, "satellite": 3},
    )
    for key in ("namesForPredictionsPerCaseVal", "namesForPredictionsPerCaseTest"):
        del data[key]
    lists.write_text(json.dumps(data))
    ds = load_dataset(lists)
    assert ds.name == "Lesions" and ds.channel_names == ("FLAIR", "T1c")
    assert ds.labels["core"] == 2
    assert ds.validation_folds == (("phantom_002",),)  # named after the label files
    assert ds.test_cases[0].case_id == "phantom_003_0000"  # after the first channel file


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("gtLabelsTraining"), "missing key 'gtLabelsTraining'"),
        (lambda d: d.update(colour="red"), "unknown key(s) ['colour']"),
        (
            lambda d: d.update(channelsTest=["test/testChannels_flair.cfg"]),
            "'channelsTest' lists 1 channel list(s) but 'channelsTraining' lists 2",
        ),
        (
            lambda d: d.update(roiMasksValidation="train/trainRoiMasks.cfg"),
            "the validation lists hold different numbers of cases",
        ),
        (lambda d: d.update(gtLabelsTraining="train/nowhere.cfg"), "file not found"),
    ],
)
def test_descriptor_problems_are_reported(lists: Path, edit: object, message: str) -> None:
    data = json.loads(lists.read_text())
    edit(data)  # type: ignore[operator]
    lists.write_text(json.dumps(data))
    problems = [str(p) for p in read_dataset(lists).problems]
    assert any(message in p for p in problems), problems
    with pytest.raises(DatasetError):
        load_dataset(lists)


@pytest.mark.e2e
def test_plan_train_and_predict_from_the_lists_with_one_command_each(
    broken: Path, tmp_path: Path, small_heuristics: Path, run_cli: RunCli
) -> None:
    """verify, plan, train (the validation lists are the one fold, though 3 cases are fewer
    than 5-fold cross-validation needs) and predict the test lists under their names."""
    import torch

    lists = write_lists(broken, tmp_path / "dm")
    work = tmp_path / "work"
    run = run_cli
    code, out, _ = run("verify", lists)
    assert code == 0 and "deepmedic dataset" in out
    plan = ["plan", lists, "--work", work, "--heuristics", small_heuristics, "--device", "cpu"]
    assert run(*plan, "-np", "1")[0] == 0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fast = ["--epochs", "1", "--iters-per-epoch", "1", "--val-iters", "1", "-np", "0"]
        code, out, err = run("train", "--work", work, "--config", "deepmedic", *fast)
        assert code == 0, err
        splits = json.loads((work / "splits.json").read_text())
        assert splits["folds"] == [
            {"train": ["phantom_000", "phantom_001"], "val": ["pred_phantom_002"]}
        ]
        assert (work / "results" / "deepmedic" / "fold_0" / "checkpoint_final.pt").is_file()
        assert not (work / "results" / "deepmedic" / "fold_1").exists()
        predict = ["predict", "-i", lists, "-o", tmp_path / "out", "--work", work]
        code, _, err = run(*predict, "--no-tta", "--threads", "1", "-np", "0")
        assert code == 0, err
    finally:
        torch.set_num_threads(threads)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["pred_phantom_003.nii.gz"]
