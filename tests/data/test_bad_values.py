"""Values that once passed ``autoseg verify``: float64 beyond float32, complex and RGB voxels,
zero/negative/NaN/infinite geometry, a singular direction matrix, damaged gzip members, an
absurd spacing (a traceback, then an out-of-memory kill, in ``plan``); and the warnings that
were missing (only background, constant images, a declared label that never occurs)."""

from __future__ import annotations

import dataclasses
import gzip
import json
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from autoseg.data.case_io import CaseArrays
from autoseg.data.geometry import Geometry
from autoseg.errors import DatasetError
from autoseg.preprocessing.normalize import ChannelNormalization
from autoseg.preprocessing.pipeline import PreprocessingSettings, preprocess_arrays

RunCli = Callable[..., tuple[int, str, str]]
CASE = "phantom_001"


def _files(root: Path) -> list[Path]:
    """Every file of CASE (two channels, label, ROI): geometry edits change them all."""
    return [
        root / "imagesTr" / f"{CASE}_0000.nii.gz",
        root / "imagesTr" / f"{CASE}_0001.nii.gz",
        root / "labelsTr" / f"{CASE}.nii.gz",
        root / "roisTr" / f"{CASE}.nii.gz",
    ]


def _patch_header(path: Path, **fields: object) -> None:
    """Overwrite raw NIfTI header fields (nibabel's writer would repair them)."""
    raw = bytearray(gzip.decompress(path.read_bytes()))
    dtype = nib.Nifti1Header.template_dtype
    for name, value in fields.items():
        sub, offset = dtype.fields[name][:2]  # type: ignore[index]
        raw[offset : offset + sub.itemsize] = np.asarray(value, dtype=sub.base).tobytes()
    path.write_bytes(gzip.compress(bytes(raw), mtime=0))


def _save(path: Path, data: np.ndarray) -> None:
    nib.save(nib.Nifti1Image(data, nib.load(path).affine), path)


def _error_lines(run_cli: RunCli, root: Path) -> tuple[int, list[str], str]:
    code, out, err = run_cli("verify", root, "-np", "1")
    assert "Traceback" not in err
    return code, [line for line in err.splitlines() if line.startswith("autoseg: error:")], out


def _header(path: Path) -> nib.Nifti1Header:
    return nib.load(path).header  # type: ignore[return-value]


def _zero_column(path: Path) -> None:
    srow = _header(path)["srow_x"].copy()
    srow[:3] = 0
    _patch_header(path, srow_x=srow, qform_code=0)


def _negative_pixdim(path: Path) -> None:
    pixdim = _header(path)["pixdim"].copy()
    pixdim[1] = -pixdim[1]
    _patch_header(path, pixdim=pixdim, sform_code=0)


def _singular(path: Path) -> None:
    rows = {key: _header(path)[key].copy() for key in ("srow_x", "srow_y", "srow_z")}
    for row in rows.values():
        row[1] = row[0]  # voxel axis j points along axis i
    _patch_header(path, **rows, qform_code=0)


def _infinite_origin(path: Path) -> None:
    srow = _header(path)["srow_x"].copy()
    srow[3] = np.inf
    _patch_header(path, srow_x=srow, qform_code=0)


def _nan_affine(path: Path) -> None:
    srow = _header(path)["srow_z"].copy()
    srow[2] = np.nan
    _patch_header(path, srow_z=srow, qform_code=0)


def _huge_spacing(path: Path) -> None:
    srow = _header(path)["srow_z"].copy()
    srow[2] *= 1e6
    _patch_header(path, srow_z=srow, qform_code=0)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (_zero_column, "voxel spacing (Z, Y, X) ("),
        (_negative_pixdim, "header pixdim (voxel size, i j k) (-"),
        (_singular, "direction matrix is singular"),
        (_infinite_origin, "affine holds NaN or infinite values"),
        (_nan_affine, "affine holds NaN or infinite values"),
        (_huge_spacing, "mm is implausible (more than 1000 mm per voxel)"),
    ],
)
def test_broken_geometry_is_reported_per_file(
    edit: Callable[[Path], None], expected: str, broken: Path, run_cli: RunCli
) -> None:
    for path in _files(broken):
        edit(path)
    code, lines, _ = _error_lines(run_cli, broken)
    assert code == 2 and len(lines) == 4, lines
    for line, path in zip(lines, _files(broken)):
        assert line.startswith(f"autoseg: error: {CASE} {path}: ") and expected in line
        assert "nan != nan" not in line and "differs from" not in line


def test_absurd_spacing_stops_plan_in_one_line(
    broken: Path, tmp_path: Path, run_cli: RunCli
) -> None:
    for path in _files(broken):
        _huge_spacing(path)
    work = tmp_path / "work"
    code, _, err = run_cli("plan", broken, "--work", work, "--device", "cpu", "-np", "1")
    assert code == 2 and "Traceback" not in err
    assert "mm is implausible" in err.strip().splitlines()[-1]
    assert not (work / "preprocessed").exists()


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("float64", "values up to 1e+300 overflow float32"),
        ("complex", "voxels are complex numbers (complex64)"),
        ("rgb", "voxels are RGB or another compound type"),
    ],
)
def test_voxel_values_autoseg_cannot_compute_with(
    kind: str, expected: str, broken: Path, run_cli: RunCli
) -> None:
    path = _files(broken)[0]
    data = np.asanyarray(nib.load(path).dataobj)
    if kind == "float64":
        changed = data.astype(np.float64)
        changed[0, 0, 0] = 1e300
    elif kind == "complex":
        changed = data.astype(np.complex64) + 1j
    else:
        changed = np.zeros(data.shape, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    _save(path, changed)
    code, lines, _ = _error_lines(run_cli, broken)
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(f"autoseg: error: {CASE} {path}: ") and expected in lines[0]


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("crc", "gzip data is damaged (Error -3 while decompressing data: incorrect data check)"),
        ("trailing", "9 byte(s) of garbage after the gzip data"),
    ],
)
def test_damaged_gzip_members(damage: str, expected: str, broken: Path, run_cli: RunCli) -> None:
    path = _files(broken)[2]
    data = bytearray(path.read_bytes())
    if damage == "crc":
        data[-6] ^= 0xFF  # the stored CRC-32 of the member
    else:
        data += b"garbage!!"
    path.write_bytes(bytes(data))
    code, lines, _ = _error_lines(run_cli, broken)
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(f"autoseg: error: {CASE} {path}: cannot read image: {expected}")


def test_warnings_constant_image_unused_label_only_background(
    broken: Path, run_cli: RunCli
) -> None:
    channel = _files(broken)[0]
    _save(channel, np.full(nib.load(channel).shape, 7, dtype=np.int16))
    labels = sorted(broken.glob("labelsT[rs]/*.nii.gz"))
    for label in labels:  # label 3 (satellite) removed everywhere
        data = np.asanyarray(nib.load(label).dataobj)
        _save(label, np.where(data == 3, 1, data).astype(data.dtype))
    code, out, err = run_cli("verify", broken, "-np", "1")
    assert code == 0 and "no problems found, 2 warning(s)" in out
    assert err.splitlines() == [
        f"autoseg: warning: {CASE} {channel}: image is constant (every voxel is 7); nothing to "
        "learn from",
        f"autoseg: warning: {broken / 'dataset.json'}: label 3 ('satellite') is declared but "
        "occurs in no label map; its scores will be undefined",
    ]
    for label in labels:
        _save(label, np.zeros(nib.load(label).shape, dtype=np.uint8))
    code, out, err = run_cli("verify", broken, "--json", "-np", "1")
    warnings = [w["check"] for w in json.loads(out)["warnings"]]
    assert code == 0 and warnings == ["constant_image", "all_background"]


def test_resampling_to_an_absurd_size_is_refused_before_allocating() -> None:
    geometry = Geometry((4, 4, 4), (900.0, 900.0, 900.0), (0, 0, 0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    arrays = CaseArrays("big", np.ones((1, 4, 4, 4), np.float32), None, None, geometry)
    settings = PreprocessingSettings(
        "d", (0.5, 0.5, 0.5), (ChannelNormalization("zscore", False),), False, 3.0, (0, 1)
    )
    with pytest.raises(DatasetError, match=r"would make a 7200x7200x7200 volume") as raised:
        preprocess_arrays(arrays, settings)
    assert raised.value.case_id == "big"


def _old_verify_cache(dataset: Path, cache: Path) -> None:
    """The verify.json an older autoseg (fewer checks) would have left for ``dataset`` as it
    is now: every case with its current file signature and grid, but no warning (those
    checks did not exist), under the digest of the older checks."""
    from autoseg.data import verify_cache
    from autoseg.data.verify import verify_dataset

    verify_dataset(dataset, cache=cache)
    entries = verify_cache.load_verify_cache(cache)
    assert entries and any(record.warnings for _, record in entries.values())
    old = {k: (sig, dataclasses.replace(r, warnings=())) for k, (sig, r) in entries.items()}
    verify_cache.save_verify_cache(cache, old, ok=True)
    data = json.loads(cache.read_text())
    data["checks"] = "0" * 64  # the digest of the older checks
    cache.write_text(json.dumps(data))


def test_a_dataset_verified_before_these_checks_is_verified_again(
    broken: Path, tmp_path: Path, run_cli: RunCli
) -> None:
    """verify.json of an older autoseg (fewer checks) does not skip the new ones: here the
    warning about a constant image, which the old record of its case lacks, and the
    dataset-level warning about a label that occurs nowhere."""
    channel = _files(broken)[0]
    _save(channel, np.full(nib.load(channel).shape, 7, dtype=np.int16))
    for label in sorted(broken.glob("labelsT[rs]/*.nii.gz")):
        data = np.asanyarray(nib.load(label).dataobj)
        _save(label, np.where(data == 3, 1, data).astype(data.dtype))
    work = tmp_path / "work"
    work.mkdir()
    _old_verify_cache(broken, work / "verify.json")
    code, _, err = run_cli("plan", broken, "--work", work, "--device", "cpu", "-np", "1")
    assert code == 0 and "label 3 ('satellite') is declared but occurs in no label map" in err
    assert f"{CASE} {channel}: image is constant (every voxel is 7)" in err


def test_the_checks_version_is_part_of_the_cache_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from autoseg.data import checks, verify_cache

    before = verify_cache.checks_digest()
    monkeypatch.setattr(checks, "CHECKS_VERSION", checks.CHECKS_VERSION + 1)
    assert verify_cache.checks_digest() != before
