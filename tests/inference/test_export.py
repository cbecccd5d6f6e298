"""export_prediction: exact uncrop/resample back to the original grid, header, npz, ROI, rules."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from autoseg.data.geometry import Geometry
from autoseg.data.imageio import read_image, write_image
from autoseg.inference.export import export_prediction, write_feature_maps
from autoseg.preprocessing.store import CaseProperties

SHAPE = (10, 12, 14)
BOX = ((2, 8), (1, 11), (3, 12))
CROP = (6, 10, 9)


def oblique_geometry(spacing: tuple[float, float, float]) -> Geometry:
    angle = 0.3
    rotation = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, -1]]
    )
    return Geometry(SHAPE, spacing, (12.5, -40.0, 7.25), tuple(rotation.ravel()))  # type: ignore[arg-type]


def reference_image(tmp_path: Path, geometry: Geometry) -> Path:
    path = tmp_path / "ref_0000.nii.gz"
    write_image(path, np.ones(SHAPE, dtype=np.float32), geometry)
    return path


def properties(
    geometry: Geometry, target_spacing: tuple[float, ...], resampled: tuple
) -> CaseProperties:
    return CaseProperties(
        case_id="case",
        original=geometry,
        crop_box=BOX,
        target_spacing=target_spacing,  # type: ignore[arg-type]
        shape_after_resample=resampled,
    )


def one_hot(labels: np.ndarray, k: int) -> np.ndarray:
    return (np.arange(k)[:, None, None, None] == labels[None]).astype(np.float32)


def label_function(shape: tuple[int, int, int], box_start: tuple[int, int, int]) -> np.ndarray:
    """Labels 0..3 as a function of the original (y, x) position, constant along z."""
    _, yy, xx = np.meshgrid(*[np.arange(n) + s for n, s in zip(shape, box_start)], indexing="ij")
    return ((yy // 3 + xx // 4) % 4).astype(np.uint8)


def test_no_resampling_round_trip_is_exact(tmp_path: Path) -> None:
    geometry = oblique_geometry((2.0, 1.0, 1.0))
    ref = reference_image(tmp_path, geometry)
    cropped = label_function(CROP, (2, 1, 3))
    out = tmp_path / "out" / "case.nii.gz"
    labels = export_prediction(
        one_hot(cropped, 4), properties(geometry, (2.0, 1.0, 1.0), CROP), out, reference=ref
    )
    expected = np.zeros(SHAPE, dtype=np.uint8)
    expected[2:8, 1:11, 3:12] = cropped
    np.testing.assert_array_equal(labels, expected)
    written, _ = read_image(out)
    np.testing.assert_array_equal(written, expected)
    assert written.dtype == np.uint8
    ref_header, out_header = nib.load(ref).header, nib.load(out).header
    for key in (
        "qform_code",
        "sform_code",
        "quatern_b",
        "quatern_c",
        "quatern_d",
        "srow_x",
        "srow_y",
        "srow_z",
        "pixdim",
        "dim",
    ):
        np.testing.assert_array_equal(out_header[key], ref_header[key], err_msg=key)


def test_resampled_z_constant_function_comes_back_exactly(tmp_path: Path) -> None:
    geometry = oblique_geometry((1.0, 0.8, 0.8))
    ref = reference_image(tmp_path, geometry)
    resampled = (2, 10, 9)  # z coarsened 3x: 6 slices -> 2
    probs = one_hot(label_function(resampled, (0, 1, 3)), 4)
    labels = export_prediction(
        probs,
        properties(geometry, (3.0, 0.8, 0.8), resampled),
        tmp_path / "c.nii.gz",
        reference=ref,
    )
    expected = np.zeros(SHAPE, dtype=np.uint8)
    expected[2:8, 1:11, 3:12] = label_function(CROP, (2, 1, 3))
    np.testing.assert_array_equal(labels, expected)


def test_saved_probabilities_match_labels_and_bounded_path(tmp_path: Path) -> None:
    geometry = oblique_geometry((1.0, 1.0, 1.0))
    ref = reference_image(tmp_path, geometry)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 4, 7, 6)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(0)
    props = properties(geometry, (1.5, 1.43, 1.5), (4, 7, 6))
    npz = tmp_path / "case.npz"
    full = export_prediction(
        probs, props, tmp_path / "a.nii.gz", reference=ref, probabilities_path=npz
    )
    bounded = export_prediction(probs, props, tmp_path / "b.nii.gz", reference=ref)
    np.testing.assert_array_equal(full, bounded)
    with np.load(npz) as archive:
        saved = archive["probabilities"]
    assert saved.dtype == np.float16 and saved.shape == (5, *SHAPE)
    assert np.all(saved[0, :2] == 1) and np.all(saved[1:, :2] == 0)  # outside the crop box
    np.testing.assert_allclose(saved.astype(np.float32).sum(0), 1.0, atol=5e-3)
    inside = np.zeros(SHAPE, dtype=bool)
    inside[2:8, 1:11, 3:12] = True
    agree = saved.argmax(0) == full
    assert agree[inside].mean() > 0.97  # float16 rounding may flip near-ties only
    assert len(np.unique(full[inside])) > 2


def test_roi_and_postprocessing(tmp_path: Path) -> None:
    geometry = oblique_geometry((1.0, 1.0, 1.0))
    ref = reference_image(tmp_path, geometry)
    cropped = np.zeros(CROP, dtype=np.uint8)
    cropped[0:3, 0:4, 0:4] = 1  # large component of class 1
    cropped[5, 8, 7] = 1  # a one-voxel component of class 1
    cropped[4:6, 0:2, 5:9] = 2
    props = properties(geometry, (1.0, 1.0, 1.0), CROP)
    roi = np.ones(SHAPE, dtype=bool)
    roi[6:, :, :] = False  # cuts class 2's lower slab (original z = 2 + 4.. 2 + 5)
    labels = export_prediction(
        one_hot(cropped, 3),
        props,
        tmp_path / "c.nii.gz",
        reference=ref,
        postprocessing={1: True, 2: False},
        roi=roi,
    )
    assert labels[2 + 5, 1 + 8, 3 + 7] == 0  # small component removed
    assert (labels == 1).sum() == 3 * 4 * 4
    assert (labels == 2).sum() == 0  # class 2 lay at z = 6, 7: outside the ROI
    assert not labels[~roi].any()


def test_wrong_grid_is_rejected(tmp_path: Path) -> None:
    geometry = oblique_geometry((1.0, 1.0, 1.0))
    ref = reference_image(tmp_path, geometry)
    with pytest.raises(ValueError, match="preprocessed grid"):
        export_prediction(
            np.zeros((3, 5, 5, 5), np.float32),
            properties(geometry, (1.0, 1.0, 1.0), CROP),
            tmp_path / "c.nii.gz",
            reference=ref,
        )


def test_feature_maps_are_4d_in_the_original_geometry(tmp_path: Path) -> None:
    geometry = oblique_geometry((2.0, 1.0, 1.0))
    stack = np.random.default_rng(1).normal(size=(3, *CROP)).astype(np.float32)
    (path,) = write_feature_maps(
        {"normal_layer0": stack}, properties(geometry, (2.0, 1.0, 1.0), CROP), tmp_path, "case"
    )
    assert path.name == "case_features_normal_layer0.nii.gz"
    image = nib.load(path)
    assert image.shape == (SHAPE[2], SHAPE[1], SHAPE[0], 3)
    np.testing.assert_allclose(image.affine, geometry.affine, atol=1e-5)
    data = np.asarray(image.dataobj).transpose(3, 2, 1, 0)
    np.testing.assert_allclose(data[:, 2:8, 1:11, 3:12], stack, atol=1e-6)
    assert not data[:, :2].any()


@pytest.mark.parametrize("save", [False, True])
def test_region_sigmoids_are_thresholded_and_painted_in_order(tmp_path: Path, save: bool) -> None:
    """Nested regions (whole 1..3, core 2..3, enhancing 3) come back as an ordinary label
    map; the saved probabilities keep every region at 0 outside the crop box and the ROI."""
    geometry = oblique_geometry((2.0, 1.0, 1.0))
    ref = reference_image(tmp_path, geometry)
    labels = label_function(CROP, (2, 1, 3))
    regions = np.stack([labels >= 1, labels >= 2, labels == 3]).astype(np.float32) * 0.9
    roi = np.ones(SHAPE, dtype=bool)
    roi[:, :, :5] = False
    npz = tmp_path / "case.npz" if save else None
    painted = export_prediction(
        regions,
        properties(geometry, (2.0, 1.0, 1.0), CROP),
        tmp_path / "case.nii.gz",
        reference=ref,
        probabilities_path=npz,
        roi=roi,
        regions_class_order=(1, 2, 3),
    )
    expected = np.zeros(SHAPE, dtype=np.uint8)
    expected[2:8, 1:11, 3:12] = labels
    expected[~roi] = 0
    np.testing.assert_array_equal(painted, expected)
    np.testing.assert_array_equal(read_image(tmp_path / "case.nii.gz")[0], expected)
    if npz is not None:
        with np.load(npz) as data:
            stored = data["probabilities"]
        assert stored.shape == (3, *SHAPE) and float(stored[:, 0].max()) == 0.0
        assert float(stored[:, ~roi].max()) == 0.0  # no background channel set to 1
        np.testing.assert_allclose(stored[0, 2:8, 1:11, 5:12], regions[0, :, :, 2:], atol=1e-3)


def test_regions_resampled_one_at_a_time_give_the_labels_of_the_saved_probabilities(
    tmp_path: Path,
) -> None:
    geometry = oblique_geometry((3.0, 1.0, 1.0))
    ref = reference_image(tmp_path, geometry)
    rng = np.random.default_rng(0)
    regions = rng.random((3, 3, 8, 7)).astype(np.float32)
    props = properties(geometry, (6.0, 1.25, 1.3), (3, 8, 7))
    bounded = export_prediction(
        regions, props, tmp_path / "a.nii.gz", reference=ref, regions_class_order=(1, 2, 3)
    )
    full = export_prediction(
        regions,
        props,
        tmp_path / "b.nii.gz",
        reference=ref,
        probabilities_path=tmp_path / "b.npz",
        regions_class_order=(1, 2, 3),
    )
    np.testing.assert_array_equal(bounded, full)
    assert set(np.unique(bounded).tolist()) <= {0, 1, 2, 3} and (bounded > 0).any()
