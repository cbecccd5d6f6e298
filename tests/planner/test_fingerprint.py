from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from autoseg.data.formats import load_dataset
from autoseg.data.geometry import Geometry
from autoseg.data.imageio import write_image
from autoseg.planner.fingerprint import aggregate, fingerprint_case
from autoseg.planner.fingerprint_io import fingerprint_from_dict, fingerprint_to_dict

IDENTITY = (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)


def _write_dataset(root: Path) -> None:
    """One case: a 10x12x14 image, zero outside a 6x8x10 body, two known label blobs."""
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    image = np.zeros((10, 12, 14), np.float32)
    image[2:8, 2:10, 2:12] = 100.0
    label = np.zeros((10, 12, 14), np.uint8)
    label[3:5, 3:5, 3:5] = 1  # 8 voxels
    label[6, 6, 6] = 1  # a second, separate component of class 1
    label[4:6, 7:9, 8:10] = 2  # 8 voxels
    image[label == 1] = 200.0
    image[label == 2] = 300.0
    geometry = Geometry((10, 12, 14), (2.0, 1.0, 0.5), (0, 0, 0), IDENTITY)
    write_image(root / "imagesTr" / "a_0000.nii.gz", image, geometry)
    write_image(root / "labelsTr" / "a.nii.gz", label, geometry)
    (root / "dataset.json").write_text(
        json.dumps(
            {
                "channel_names": {"0": "T1"},
                "labels": {"background": 0, "x": 1, "y": 2},
                "numTraining": 1,
                "file_ending": ".nii.gz",
            }
        )
    )


def test_case_fingerprint_has_exact_counts(tmp_path: Path) -> None:
    _write_dataset(tmp_path)
    dataset = load_dataset(tmp_path)
    case_fp, samples = fingerprint_case(dataset.cases[0], dataset)
    assert case_fp.spacing == (2.0, 1.0, 0.5)
    assert case_fp.shape == (10, 12, 14)
    assert case_fp.shape_after_crop == (6, 8, 10)
    assert dict(case_fp.voxels_per_class) == {0: 6 * 8 * 10 - 17, 1: 9, 2: 8}  # in the crop
    assert case_fp.component_sizes[1] == (8, 1) and case_fp.num_components[1] == 2
    assert case_fp.component_sizes[2] == (8,) and case_fp.classes_present == (1, 2)
    # Centres of mass in mm from the crop's corner (index 2 on every axis), Z/Y/X.
    centre_1 = (8 * 3.5 + 6) / 9 - 2
    assert case_fp.class_centroids[1] == pytest.approx((centre_1 * 2, centre_1, centre_1 * 0.5))
    assert case_fp.class_centroids[2] == pytest.approx((2.5 * 2, 5.5, 6.5 * 0.5))
    stats = case_fp.intensity[0]
    assert stats.min == 200.0 and stats.max == 300.0 and samples.shape == (1, 17)
    assert stats.mean == pytest.approx((9 * 200 + 8 * 300) / 17)


def test_aggregate_and_json_round_trip(tmp_path: Path) -> None:
    _write_dataset(tmp_path)
    dataset = load_dataset(tmp_path)
    case_fp, samples = fingerprint_case(dataset.cases[0], dataset)
    fingerprint = aggregate(dataset, [case_fp], [samples], {"dataset": "abc"})
    assert fingerprint.class_case_fraction == {1: 1.0, 2: 1.0}
    assert sum(fingerprint.class_voxel_fraction.values()) == pytest.approx(1.0)
    data = json.loads(json.dumps(fingerprint_to_dict(fingerprint)))
    assert fingerprint_from_dict(data) == fingerprint
    assert data["cases"][0]["class_centroids"]["2"] == pytest.approx([5.0, 5.5, 3.25])
