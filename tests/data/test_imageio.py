from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from autoseg.data.geometry import Geometry
from autoseg.data.imageio import read_geometry, read_image, write_image
from autoseg.errors import DatasetError


def _affine(kind: str) -> np.ndarray:
    """Oblique (rotated about two axes) or a non-RAS axis-aligned orientation (LPI-like)."""
    affine = np.eye(4)
    if kind == "oblique":
        a, b = np.deg2rad(23.0), np.deg2rad(-11.0)
        rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
        rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
        affine[:3, :3] = rz @ rx @ np.diag([0.75, 0.75, 4.0])
    else:  # axes flipped and permuted: i -> -x, j -> -z, k -> +y
        affine[:3, :3] = np.array([[-0.9, 0, 0], [0, 0, 2.5], [0, -1.1, 0]])
    affine[:3, 3] = [17.25, -40.5, 8.0]
    return affine


@pytest.fixture(params=["oblique", "non_ras"])
def nifti_file(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    data = rng.normal(size=(6, 7, 5)).astype(np.float32)  # (i, j, k)
    img = nib.Nifti1Image(data, _affine(request.param))
    img.header.set_qform(_affine(request.param), code=1)
    path = tmp_path / f"{request.param}.nii.gz"
    nib.save(img, str(path))
    return path


def test_nifti_array_is_z_y_x(nifti_file: Path) -> None:
    array, geometry = read_image(nifti_file)
    raw = np.asanyarray(nib.load(str(nifti_file)).dataobj)
    assert array.shape == (5, 7, 6) == geometry.shape
    assert array[4, 2, 1] == raw[1, 2, 4]


def test_nifti_round_trip_preserves_affine(nifti_file: Path, tmp_path: Path) -> None:
    array, geometry = read_image(nifti_file)
    out = tmp_path / "out.nii.gz"
    write_image(out, array, geometry)
    array2, geometry2 = read_image(out)
    np.testing.assert_array_equal(array2, array)
    np.testing.assert_allclose(geometry2.affine, geometry.affine, atol=1e-6)


def test_nifti_write_with_reference_copies_header_exactly(nifti_file: Path, tmp_path: Path) -> None:
    array, geometry = read_image(nifti_file)
    out = tmp_path / "seg.nii.gz"
    write_image(out, (array > 0).astype(np.uint8), geometry, reference=nifti_file)
    ref, seg = nib.load(str(nifti_file)), nib.load(str(out))
    assert np.array_equal(seg.affine, ref.affine)
    assert np.array_equal(seg.header.get_qform(), ref.header.get_qform())
    assert seg.header["qform_code"] == ref.header["qform_code"]
    assert seg.header["sform_code"] == ref.header["sform_code"]
    assert seg.shape == ref.shape and seg.get_data_dtype() == np.uint8
    assert nib.aff2axcodes(seg.affine) == nib.aff2axcodes(ref.affine)


@pytest.mark.parametrize("ending", [".nrrd", ".mha", ".mhd"])
@pytest.mark.parametrize("kind", ["oblique", "non_ras"])
def test_sitk_round_trip(tmp_path: Path, ending: str, kind: str) -> None:
    geometry = Geometry.from_affine(_affine(kind), (5, 7, 6))
    array = np.arange(5 * 7 * 6, dtype=np.int16).reshape(5, 7, 6)
    path = tmp_path / f"img{ending}"
    write_image(path, array, geometry)
    array2, geometry2 = read_image(path)
    np.testing.assert_array_equal(array2, array)
    np.testing.assert_allclose(geometry2.affine, geometry.affine, atol=1e-9)
    header_geometry, channels = read_geometry(path)
    assert channels == 1 and header_geometry.allclose(geometry2)
    out = tmp_path / f"seg{ending}"
    write_image(out, (array % 3).astype(np.uint8), geometry2, reference=path)
    np.testing.assert_allclose(read_image(out)[1].affine, geometry2.affine, atol=1e-12)


def test_nifti_and_sitk_agree_on_world_coordinates(nifti_file: Path, tmp_path: Path) -> None:
    array, geometry = read_image(nifti_file)
    nrrd = tmp_path / "same.nrrd"
    write_image(nrrd, array, geometry)
    np.testing.assert_allclose(read_image(nrrd)[1].affine, geometry.affine, atol=1e-6)


def test_4d_nifti_gives_channels_first(tmp_path: Path) -> None:
    data = np.zeros((4, 5, 6, 2), np.float32)
    data[..., 1] = 1
    path = tmp_path / "multi.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    array, geometry = read_image(path)
    assert array.shape == (2, 6, 5, 4) and geometry.shape == (6, 5, 4)
    assert array[1].min() == 1 and array[0].max() == 0
    assert read_geometry(path)[1] == 2


def test_truncated_gzip_is_a_dataset_error(nifti_file: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(nifti_file.read_bytes()[:-40])
    with pytest.raises(DatasetError, match="cannot read image") as info:
        read_image(broken)
    assert info.value.path == broken


def test_missing_and_unsupported_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="file not found"):
        read_image(tmp_path / "nope.nii.gz")
    other = tmp_path / "x.png"
    other.write_bytes(b"0")
    with pytest.raises(DatasetError, match="unsupported image format"):
        read_image(other)
    garbage = tmp_path / "g.nii.gz"
    garbage.write_bytes(gzip.compress(b"not a nifti"))
    with pytest.raises(DatasetError):
        read_geometry(garbage)


def test_write_rejects_shape_mismatch(tmp_path: Path) -> None:
    geometry = Geometry((2, 3, 4), (1.0, 1.0, 1.0), (0, 0, 0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    with pytest.raises(ValueError, match="does not match"):
        write_image(tmp_path / "x.nii.gz", np.zeros((2, 3, 5)), geometry)
    assert not any(tmp_path.iterdir())
