"""Dataset formats: nnU-Net v2 raw, Medical Segmentation Decathlon, CSV manifest; detection."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from autoseg.data.case_io import load_case
from autoseg.data.formats import LOADERS, detect_format, load_dataset, read_dataset
from autoseg.data.verify import verify_dataset
from autoseg.errors import DatasetError

RunCli = Callable[..., tuple[int, str, str]]


# --------------------------------------------------------------------------- nnU-Net v2


def test_loaders_registry() -> None:
    assert set(LOADERS) == {"nnunet", "msd", "manifest", "deepmedic"}


def test_nnunet_folder(verify_base: Path) -> None:
    ds = load_dataset(verify_base)
    assert (ds.format, ds.name, ds.num_training) == ("nnunet", "Phantom", 3)
    assert ds.channel_names == ("T1", "FLAIR")
    assert dict(ds.labels) == {"background": 0, "lesion": 1, "core": 2, "satellite": 3}
    assert [c.case_id for c in ds.cases] == ["phantom_000", "phantom_001", "phantom_002"]
    case = ds.cases[1]
    assert case.channels == (
        verify_base / "imagesTr" / "phantom_001_0000.nii.gz",
        verify_base / "imagesTr" / "phantom_001_0001.nii.gz",
    )
    assert case.label == verify_base / "labelsTr" / "phantom_001.nii.gz"
    assert case.roi == verify_base / "roisTr" / "phantom_001.nii.gz"
    assert ds.has_roi and case.group is None and not case.channels_in_one_file
    (test,) = ds.test_cases
    assert test.label == verify_base / "labelsTs" / "phantom_003.nii.gz"
    assert test.roi == verify_base / "roisTs" / "phantom_003.nii.gz"
    assert load_dataset(verify_base / "dataset.json") == ds


def test_nnunet_groups_regions_and_unlabelled_tests(broken: Path) -> None:
    data = json.loads((broken / "dataset.json").read_text())
    data["labels"] = {"background": 0, "whole": [1, 2, 3], "core": [2, 3], "satellite": 3}
    data["groups"] = {"phantom_000": "anna", "phantom_001": "anna"}
    (broken / "dataset.json").write_text(json.dumps(data))
    shutil.rmtree(broken / "labelsTs")
    shutil.rmtree(broken / "roisTs")
    ds = load_dataset(broken)
    assert dict(ds.regions) == {"whole": (1, 2, 3), "core": (2, 3)}
    assert dict(ds.labels) == {"background": 0, "satellite": 3, "label_1": 1, "label_2": 2}
    assert ds.label_values == (0, 1, 2, 3)
    assert [c.group for c in ds.cases] == ["anna", "anna", None]
    assert ds.test_cases[0].label is None and ds.test_cases[0].roi is None


def test_nnunet_strict_loading_raises_the_first_problem(broken: Path) -> None:
    (broken / "labelsTr" / "phantom_002.nii.gz").unlink()
    (broken / "imagesTr" / "phantom_000_0001.nii.gz").unlink()
    with pytest.raises(DatasetError) as info:
        load_dataset(broken)
    assert info.value.case_id == "phantom_000"
    assert info.value.path == broken / "imagesTr" / "phantom_000_0001.nii.gz"
    assert "file not found (and 1 more problem(s)" in str(info.value)
    result = read_dataset(broken)
    assert result.dataset is not None and len(result.problems) == 2


# --------------------------------------------------------------------------- MSD


def _make_msd(source: Path, out: Path, *, per_channel: bool = False) -> Path:
    """Convert an nnU-Net phantom into an MSD task folder (4D multi-channel images)."""
    ds = load_dataset(source)
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (out / sub).mkdir(parents=True)
    training, test = [], []
    for case in ds.cases + ds.test_cases:
        split = "Tr" if case in ds.cases else "Ts"
        image = out / f"images{split}" / f"{case.case_id}.nii.gz"
        if per_channel:
            for path in case.channels:
                shutil.copy(path, image.parent / path.name)
        else:
            volumes = [nib.load(p) for p in case.channels]
            data = np.stack([np.asarray(v.dataobj) for v in volumes], axis=-1)
            nib.save(nib.Nifti1Image(data, volumes[0].affine), image)
        if split == "Tr":
            assert case.label is not None
            shutil.copy(case.label, out / "labelsTr" / f"{case.case_id}.nii.gz")
            training.append(
                {"image": f"./imagesTr/{image.name}", "label": f"./labelsTr/{case.case_id}.nii.gz"}
            )
        else:
            test.append(f"./imagesTs/{image.name}")
    training.append(
        {"image": "./imagesTr/._phantom_000.nii.gz", "label": "./labelsTr/._phantom_000.nii.gz"}
    )
    (out / "imagesTr" / "._phantom_000.nii.gz").write_bytes(b"macOS resource fork")
    description = {
        "name": "PhantomMSD",
        "modality": {"0": "T1", "1": "FLAIR"},
        "labels": {"0": "background", "1": "lesion", "2": "core", "3": "satellite"},
        "numTraining": len(ds.cases),
        "training": training,
        "test": test,
    }
    (out / "dataset.json").write_text(json.dumps(description))
    return out


def test_msd_4d_images(verify_base: Path, tmp_path: Path) -> None:
    msd = _make_msd(verify_base, tmp_path / "Task99_Phantom")
    assert detect_format(msd) == "msd"
    ds = load_dataset(msd)
    assert (ds.format, ds.name, ds.num_training) == ("msd", "PhantomMSD", 3)
    assert ds.channel_names == ("T1", "FLAIR")
    assert dict(ds.labels) == {"background": 0, "lesion": 1, "core": 2, "satellite": 3}
    assert [c.case_id for c in ds.cases] == ["phantom_000", "phantom_001", "phantom_002"]
    assert all(c.channels_in_one_file and len(c.channels) == 1 for c in ds.cases)
    assert ds.test_cases[0].label is None
    msd_arrays = load_case(ds.cases[1], ds)
    nn = load_dataset(verify_base)
    nn_arrays = load_case(nn.cases[1], nn)
    np.testing.assert_array_equal(msd_arrays.image, nn_arrays.image)
    np.testing.assert_array_equal(msd_arrays.label, nn_arrays.label)
    assert msd_arrays.geometry.allclose(nn_arrays.geometry)
    assert verify_dataset(msd).ok


@pytest.mark.parametrize(
    ("volumes", "got"), [(slice(0, 1), "got 1 volumes"), (0, "got a 3D image")]
)
def test_msd_4d_image_with_wrong_channel_count(
    verify_base: Path, tmp_path: Path, run_cli: RunCli, volumes: object, got: str
) -> None:
    msd = _make_msd(verify_base, tmp_path / "msd")
    path = msd / "imagesTr" / "phantom_001.nii.gz"
    image = nib.load(path)
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj)[..., volumes], image.affine), path)
    code, _, err = run_cli("verify", msd, "-np", "1")
    assert code == 2
    assert err.strip() == (
        f"autoseg: error: phantom_001 {path}: expected a 4D image holding 2 channels, {got}"
    )


def test_msd_nnunet_v1_per_channel_layout(verify_base: Path, tmp_path: Path) -> None:
    msd = _make_msd(verify_base, tmp_path / "v1", per_channel=True)
    ds = load_dataset(msd)
    case = ds.cases[0]
    assert not case.channels_in_one_file
    assert [p.name for p in case.channels] == ["phantom_000_0000.nii.gz", "phantom_000_0001.nii.gz"]
    assert load_case(case, ds).image.shape[0] == 2


def test_msd_missing_keys(tmp_path: Path) -> None:
    (tmp_path / "dataset.json").write_text(json.dumps({"modality": {"0": "CT"}}))
    result = read_dataset(tmp_path)
    assert result.dataset is None
    assert "missing key(s) 'labels', 'training'" in str(result.problems[0])


# --------------------------------------------------------------------------- CSV manifest


def _write_manifest(root: Path, rows: list[str], sidecar: dict[str, object] | None) -> Path:
    csv = root / "lists" / "cases.csv"
    csv.parent.mkdir(exist_ok=True)
    csv.write_text("\n".join(rows) + "\n")
    if sidecar is not None:
        csv.with_suffix(".json").write_text(json.dumps(sidecar))
    return csv


def _rows(header: str = "case,CT,FLAIR,label,roi,patient") -> list[str]:
    rows = [header]
    for i, patient in ((0, "p0"), (1, "p0"), (2, "p1")):
        case = f"phantom_{i:03d}"
        rows.append(
            f"{case},../imagesTr/{case}_0000.nii.gz,../imagesTr/{case}_0001.nii.gz,"
            f"../labelsTr/{case}.nii.gz,../roisTr/{case}.nii.gz,{patient}"
        )
    rows.append(
        "phantom_003,../imagesTs/phantom_003_0000.nii.gz,../imagesTs/phantom_003_0001.nii.gz,,,p2"
    )
    return rows


def test_manifest_with_relative_paths_groups_and_sidecar(broken: Path) -> None:
    labels = {"background": 0, "lesion": 1, "core": 2, "satellite": 3}
    csv = _write_manifest(broken, _rows(), {"labels": labels, "name": "FromCsv"})
    assert detect_format(csv) == "manifest"
    ds = load_dataset(csv)
    assert (ds.format, ds.name, ds.root, ds.source) == ("manifest", "FromCsv", csv.parent, csv)
    assert ds.channel_names == ("CT", "FLAIR")
    assert dict(ds.labels) == labels
    assert [c.group for c in ds.cases] == ["p0", "p0", "p1"]
    assert ds.cases[0].channels[0] == csv.parent / "../imagesTr/phantom_000_0000.nii.gz"
    assert ds.cases[0].channels[0].is_file() and ds.has_roi
    (test,) = ds.test_cases
    assert (test.case_id, test.label, test.roi, test.group) == ("phantom_003", None, None, "p2")
    assert verify_dataset(csv).ok


def test_manifest_infers_labels_without_sidecar(broken: Path) -> None:
    csv = _write_manifest(broken, _rows(), None)
    ds = load_dataset(csv)
    assert ds.name == "cases"
    assert dict(ds.labels) == {"background": 0, "label_1": 1, "label_2": 2, "label_3": 3}


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("id,T1,FLAIR,label,roi,patient", "no 'case' column"),
        ("case,label,roi,patient,group,x", "use either a 'patient' or a 'group' column"),
    ],
)
def test_manifest_structure_errors(broken: Path, header: str, message: str) -> None:
    csv = _write_manifest(broken, [header, "a,b,c,d,e,f"], None)
    with pytest.raises(DatasetError, match=message) as info:
        load_dataset(csv)
    assert info.value.path == csv


def test_manifest_sidecar_with_unknown_keys(broken: Path) -> None:
    csv = _write_manifest(broken, _rows(), {"labels": {"background": 0}, "colour": "red"})
    problems = [str(p) for p in read_dataset(csv).problems]
    assert problems == [
        f"{csv.with_suffix('.json')}: unknown key(s) ['colour']; "
        "expected keys: labels, regions_class_order, name, description"
    ]


# --------------------------------------------------------------------------- detection


def test_detect_format_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="dataset not found"):
        detect_format(tmp_path / "missing")
    with pytest.raises(DatasetError, match=r"no dataset\.json"):
        detect_format(tmp_path)
    (tmp_path / "dataset.json").write_text(json.dumps({"name": "x"}))
    with pytest.raises(DatasetError, match="cannot tell the format"):
        detect_format(tmp_path)
    (tmp_path / "dataset.json").write_text("[1, 2]")
    with pytest.raises(DatasetError, match="expected a JSON object"):
        detect_format(tmp_path)
