"""The phantom generator: determinism, classes, spacing modes, ROI masks, CT, the spec."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from autoseg.data.case_io import load_case
from autoseg.data.formats import load_dataset
from autoseg.data.phantom import PhantomCase, tissue_profile
from autoseg.data.synthetic import (
    SPACING_MODES,
    PhantomSpec,
    generate_phantom_dataset,
    patient_of,
    phantom_case,
)
from autoseg.errors import ConfigError

SMALL = {"num_train_cases": 2, "num_test_cases": 1, "base_shape": (16, 20, 20)}


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    spec = PhantomSpec(**SMALL, with_roi=True)  # type: ignore[arg-type]
    generate_phantom_dataset(tmp_path / "a", spec)
    generate_phantom_dataset(tmp_path / "b", spec)
    generate_phantom_dataset(tmp_path / "c", PhantomSpec(**SMALL, with_roi=True, seed=1))  # type: ignore[arg-type]
    a, b, c = (_hashes(tmp_path / name) for name in "abc")
    assert a == b and len(a) == 3 * 4 + 1
    assert (
        a.keys() == c.keys()
        and a["imagesTr/phantom_000_0000.nii.gz"] != c["imagesTr/phantom_000_0000.nii.gz"]
    )
    gz = (tmp_path / "a" / "imagesTr" / "phantom_000_0000.nii.gz").read_bytes()
    assert gz[:2] == b"\x1f\x8b" and gz[4:8] == b"\x00\x00\x00\x00"  # gzip mtime 0
    assert not list(tmp_path.glob(".tmp-*"))


def test_dataset_json_and_layout(tiny_dataset: Path) -> None:
    data = json.loads((tiny_dataset / "dataset.json").read_text())
    assert data["channel_names"] == {"0": "T1", "1": "FLAIR"}
    assert data["labels"] == {"background": 0, "lesion": 1, "core": 2, "satellite": 3}
    assert data["numTraining"] == 6 and data["file_ending"] == ".nii.gz"
    assert "groups" not in data
    assert PhantomSpec.from_dict(data["phantom_spec"]).num_train_cases == 6
    assert len(list((tiny_dataset / "imagesTr").iterdir())) == 12
    assert len(list((tiny_dataset / "labelsTs").iterdir())) == 2
    assert not (tiny_dataset / "roisTr").exists()


def test_every_class_present_and_nested(tiny_dataset: Path) -> None:
    ds = load_dataset(tiny_dataset)
    present: set[int] = set()
    for case in ds.cases:
        label = load_case(case, ds).label
        assert label is not None
        present |= set(np.unique(label).tolist())
        core = label == 2
        ring = ndimage.binary_dilation(core) & ~core
        if ring.any():  # the core is wrapped in the lesion
            assert np.isin(label[ring], (1, 2)).mean() > 0.95
    assert present == {0, 1, 2, 3}


def test_class_sizes_at_the_default_size() -> None:
    spec = PhantomSpec()
    counts = np.array(
        [np.bincount(phantom_case(spec, i).label.ravel(), minlength=4) for i in range(6)]
    )
    assert (counts[:, 1] > 1000).all() and (counts[:, 2] > 200).all()
    assert (counts[:, 3] >= 200).all() and (counts[:, 3] <= 1200).all()  # a few hundred


@pytest.mark.parametrize(("presence", "low", "high"), [(0.85, 14, 20), (0.4, 3, 13)])
def test_rare_class_presence(presence: float, low: int, high: int) -> None:
    spec = PhantomSpec(
        num_train_cases=20,
        num_test_cases=3,
        base_shape=(16, 20, 20),
        rare_class_presence=presence,
    )
    has_rare = [bool((phantom_case(spec, i).label == 3).any()) for i in range(23)]
    assert has_rare[0] and all(has_rare[20:])  # the first case and every test case
    assert low <= sum(has_rare[:20]) < high


@pytest.mark.parametrize("mode", SPACING_MODES)
def test_spacing_modes(mode: str) -> None:
    spec = PhantomSpec(spacing=mode)
    spacings = np.array([phantom_case(spec, i).geometry.spacing for i in range(4)])
    if mode == "iso":
        assert (spacings == 1.0).all()
    elif mode == "varied":
        assert len({tuple(s) for s in spacings}) == 4
        assert (spacings[:, 0] >= 0.9).all() and (spacings[:, 0] <= 1.6).all()
    else:
        assert (spacings[:, 0] >= 3.0).all() and (spacings[:, 1] <= 0.85).all()
        assert (spacings[:, 0] / spacings[:, 1] > 3).all()
    assert (spacings[:, 1] == spacings[:, 2]).all()


def test_shapes_vary_around_the_base_shape() -> None:
    spec = PhantomSpec(base_shape=(40, 48, 56))
    shapes = np.array([phantom_case(spec, i).geometry.shape for i in range(5)])
    assert len({tuple(s) for s in shapes}) == 5
    assert (np.abs(shapes / np.array([40, 48, 56]) - 1) < 0.5).all()


def test_mri_background_is_zero_and_roi_is_the_body(phantom_dataset: Callable[..., Path]) -> None:
    root = phantom_dataset(**SMALL, with_roi=True)
    ds = load_dataset(root)
    for case in ds.cases + ds.test_cases:
        arrays = load_case(case, ds)
        assert arrays.roi is not None
        nonzero = (arrays.image != 0).any(axis=0)
        assert not nonzero[~arrays.roi].any()  # background exactly 0 outside the body
        assert nonzero[arrays.roi].mean() > 0.99
        assert arrays.label is not None and not arrays.label[~arrays.roi].any()
        _, ys, xs = np.nonzero(arrays.roi)
        assert ys.min() > 0 and xs.min() > 0  # cropping to the non-zero box matters


def test_ct_in_hounsfield_units() -> None:
    spec = PhantomSpec(channels=("CT",), spacing="aniso")
    case = phantom_case(spec, 0)
    (ct,) = case.channels
    assert ct.dtype == np.int16 and ct.min() >= -1024
    air = ct[case.roi == 0]
    assert abs(np.median(air) + 1000) < 10
    soft = ct[(case.label == 0) & (case.roi == 1)]
    assert -150 < np.median(soft) < 120
    assert np.median(ct[case.label == 1]) > np.median(soft) + 40


def test_each_class_has_a_distinct_signature() -> None:
    profiles = np.stack([tissue_profile(name, 2, True) for name in ("T1", "FLAIR")])
    classes = profiles[:, 5:]  # lesion, core, rare (after background, fat, body, organ, bone)
    for k in range(classes.shape[1]):
        rest = np.delete(profiles[:, 1:], 4 + k, axis=1)
        assert np.abs(rest - classes[:, k : k + 1]).max(axis=0).min() >= 0.1
    unknown = tissue_profile("DWI", 4, True)
    assert np.array_equal(unknown, tissue_profile("DWI", 4, True)) and unknown.size == 10


def test_patient_groups_share_anatomy(tmp_path: Path) -> None:
    spec = PhantomSpec(**SMALL, cases_per_patient=2)  # type: ignore[arg-type]
    ds = generate_phantom_dataset(tmp_path / "g", spec)
    assert [c.group for c in ds.cases] == ["patient_000", "patient_000"]
    assert ds.test_cases[0].group == "patient_001"
    big = PhantomSpec(cases_per_patient=2)
    assert [patient_of(big, i) for i in (0, 1, 2, 9, 10, 11, 12)] == [0, 0, 1, 4, 5, 5, 6]
    a, b, other = (phantom_case(big, i) for i in (0, 1, 2))
    assert a.geometry.spacing != b.geometry.spacing

    def lesion_centre_mm(case: PhantomCase) -> np.ndarray:
        """Lesion centroid in mm from the image centre (where the anatomy is drawn)."""
        voxels = np.argwhere(np.isin(case.label, (1, 2)))
        centre = (np.asarray(case.geometry.shape) - 1) / 2
        return (voxels.mean(axis=0) - centre) * np.asarray(case.geometry.spacing)

    same = np.linalg.norm(lesion_centre_mm(a) - lesion_centre_mm(b))
    different = np.linalg.norm(lesion_centre_mm(a) - lesion_centre_mm(other))
    assert same < 1.0 < 3.0 < different


def test_other_file_endings(tmp_path: Path) -> None:
    ds = generate_phantom_dataset(tmp_path / "nrrd", PhantomSpec(**SMALL, file_ending=".nrrd"))  # type: ignore[arg-type]
    assert ds.file_ending == ".nrrd" and ds.cases[0].channels[0].name == "phantom_000_0000.nrrd"
    assert load_case(ds.cases[0], ds).image.shape[0] == 2


def test_generation_is_fast() -> None:
    spec = PhantomSpec()
    start = time.perf_counter()
    for index in range(3):
        phantom_case(spec, index)
    assert (time.perf_counter() - start) / 3 < 1.0


def test_output_folder_rules(tmp_path: Path) -> None:
    spec = PhantomSpec(**SMALL)  # type: ignore[arg-type]
    out = tmp_path / "ds"
    generate_phantom_dataset(out, spec)
    with pytest.raises(ConfigError, match="not empty; pass --overwrite"):
        generate_phantom_dataset(out, spec)
    (out / "imagesTr" / "stale_0000.nii.gz").write_bytes(b"old")
    generate_phantom_dataset(out, spec, overwrite=True)
    assert not (out / "imagesTr" / "stale_0000.nii.gz").exists()
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match=r"holds no dataset\.json"):
        generate_phantom_dataset(other, spec, overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"


def test_spec_validation_and_round_trip() -> None:
    spec = PhantomSpec(channels=["CT"], base_shape=[20, 24, 24])  # type: ignore[arg-type]
    assert spec.channels == ("CT",) and spec.base_shape == (20, 24, 24)
    assert PhantomSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    with pytest.raises(ConfigError, match="did you mean 'varied'"):
        PhantomSpec(spacing="vary")
    with pytest.raises(ConfigError, match=r"nested_classes must be in 1..4, got 5"):
        PhantomSpec(nested_classes=5)
    with pytest.raises(ConfigError, match="file_ending must be one of"):
        PhantomSpec(file_ending=".png")
    data = spec.to_dict()
    data["colour"] = "red"
    del data["seed"]
    with pytest.raises(ConfigError, match=r"unknown keys \['colour'\], missing keys \['seed'\]"):
        PhantomSpec.from_dict(data)


def test_labels_follow_the_class_options() -> None:
    assert PhantomSpec(nested_classes=1, rare_class=False).labels == {"background": 0, "lesion": 1}
    assert PhantomSpec(nested_classes=3).labels == {
        "background": 0,
        "lesion": 1,
        "core": 2,
        "necrosis": 3,
        "satellite": 4,
    }
    case = phantom_case(PhantomSpec(nested_classes=3, rare_class=False), 0)
    assert set(np.unique(case.label).tolist()) <= {0, 1, 2, 3} and (case.label == 1).any()


def test_brats_like_regions_and_sparse_slices(tmp_path: Path) -> None:
    spec = PhantomSpec(
        **SMALL,  # type: ignore[arg-type]
        channels=("FLAIR", "T1", "T1CE", "T2"),
        nested_classes=3,
        rare_class=False,
        regions=True,
        sparse_slices=4,
    )
    assert "regions" not in PhantomSpec(**SMALL).to_dict()  # type: ignore[arg-type]
    assert PhantomSpec.from_dict(spec.to_dict()) == spec
    ds = generate_phantom_dataset(tmp_path / "brats", spec)
    data = json.loads((tmp_path / "brats" / "dataset.json").read_text())
    assert data["labels"] == {
        "background": 0,
        "whole tumour": [1, 2, 3],
        "tumour core": [2, 3],
        "enhancing tumour": [3],
        "ignore": 4,
    }
    assert data["regions_class_order"] == [1, 2, 3]
    assert ds.region_based and ds.ignore_label == 4 and ds.num_channels == 4
    train = load_case(ds.cases[0], ds).label
    assert train is not None and set(np.unique(train[1:4]).tolist()) == {4}
    assert 4 not in np.unique(train[::4])
    test = load_case(ds.test_cases[0], ds).label  # held-out labels stay dense
    assert test is not None and 4 not in np.unique(test)
    assert set(np.unique(test).tolist()) == {0, 1, 2, 3}
