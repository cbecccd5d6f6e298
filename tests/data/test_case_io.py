"""Checked case loading: arrays, dtypes, and the same errors verify reports."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from autoseg.data.case_io import load_case, reference_image_path
from autoseg.data.checks import check_declared_labels, unique_values
from autoseg.data.formats import load_dataset
from autoseg.data.imageio import read_image, write_image
from autoseg.errors import DatasetError


def test_load_case_arrays(verify_base: Path) -> None:
    ds = load_dataset(verify_base)
    case = ds.cases[0]
    arrays = load_case(case, ds)
    t1, geometry = read_image(case.channels[0])
    flair, _ = read_image(case.channels[1])
    assert arrays.case_id == "phantom_000"
    assert arrays.image.dtype == np.float32 and arrays.image.shape == (2, *geometry.shape)
    np.testing.assert_array_equal(arrays.image[0], t1)
    np.testing.assert_array_equal(arrays.image[1], flair)
    assert arrays.label is not None and arrays.label.dtype == np.int16
    assert set(np.unique(arrays.label)) == {0, 1, 2, 3}
    assert arrays.roi is not None and arrays.roi.dtype == np.bool_
    assert arrays.geometry == geometry
    assert reference_image_path(case) == case.channels[0]


def test_load_case_without_label(verify_base: Path) -> None:
    ds = load_dataset(verify_base)
    arrays = load_case(ds.cases[1], ds, load_label=False)
    assert arrays.label is None and arrays.roi is not None


def test_load_case_raises_what_verify_reports(broken: Path) -> None:
    ds = load_dataset(broken)
    case = ds.cases[2]
    assert case.label is not None
    label, geometry = read_image(case.label)
    write_image(case.label, label.astype(np.float32) + 0.5, geometry)
    image, geometry = read_image(case.channels[1])
    image[0, 0, 0] = np.inf
    write_image(case.channels[1], image, geometry)
    with pytest.raises(DatasetError) as info:
        load_case(case, ds)
    assert info.value.case_id == "phantom_002" and info.value.path == case.channels[1]
    assert "infinite voxel(s)" in str(info.value)
    assert "(and 1 more problem(s); run 'autoseg verify' to list them)" in str(info.value)
    with pytest.raises(DatasetError) as info:
        load_case(case, ds, load_label=False)  # the label is not read: only the Inf remains
    assert "infinite" in str(info.value) and "more problem" not in str(info.value)


def test_roi_masks_mean_greater_than_zero_as_deepmedic_reads_them(broken: Path) -> None:
    ds = load_dataset(broken)
    case = ds.cases[0]
    assert case.roi is not None
    roi, geometry = read_image(case.roi)
    expected = roi > 0
    write_image(case.roi, (roi * np.float32(0.99999997)).astype(np.float32), geometry)
    arrays = load_case(case, ds, load_label=False)
    assert arrays.roi is not None and arrays.roi.dtype == bool
    assert np.array_equal(arrays.roi, expected)
    write_image(case.roi, roi * 3, geometry)  # 0 and 3: inside wherever > 0
    assert np.array_equal(load_case(case, ds, load_label=False).roi, expected)


@pytest.mark.parametrize(
    ("transform", "text"),
    [
        (lambda a: a * 0.0, r"ROI mask is empty: no voxel is > 0 \(values \(0\)\)"),
        (lambda a: a - 0.5, r"ROI mask holds negative values \(values \(-0.5, 0.5\)\)"),
    ],
)
def test_load_case_rejects_an_unusable_roi_showing_its_values(
    broken: Path, transform: Callable[[np.ndarray], np.ndarray], text: str
) -> None:
    ds = load_dataset(broken)
    case = ds.cases[0]
    assert case.roi is not None
    roi, geometry = read_image(case.roi)
    write_image(case.roi, transform(roi.astype(np.float32)), geometry)
    with pytest.raises(DatasetError, match=text) as info:
        load_case(case, ds, load_label=False)
    assert info.value.case_id == case.case_id and info.value.path == case.roi


def test_unique_values() -> None:
    assert unique_values(np.array([[3, -2], [3, 70000]])).tolist() == [-2, 3, 70000]
    assert unique_values(np.array([5, 1, 5], dtype=np.uint8)).tolist() == [1, 5]
    assert unique_values(np.array([True, False])).tolist() == [0, 1]
    assert unique_values(np.array([0.5, 0.5, np.nan])).size == 2
    assert unique_values(np.zeros(0, dtype=np.int16)).size == 0
    extremes = np.array([-32768, 0, 32767], dtype=np.int16)  # range 65535: no overflow
    assert unique_values(extremes).tolist() == [-32768, 0, 32767]


@pytest.mark.parametrize(
    ("labels", "text"),
    [
        ({"a": 1, "b": 2}, "background with value 0"),
        ({"background": 0, "a": 1, "b": 1}, "declared twice"),
        ({"background": 0, "a": -1}, "must be >= 0"),
        ({"background": 0, "a": 2}, "remap 2 -> 1"),
    ],
)
def test_declared_label_checks(labels: dict[str, int], text: str) -> None:
    problems = check_declared_labels(labels, source=Path("dataset.json"))
    assert len(problems) == 1 and text in str(problems[0])


def test_declared_labels_that_are_fine() -> None:
    assert check_declared_labels({"background": 0, "a": 1, "b": 2}, source=Path("x")) == []
