"""One test per ``autoseg verify`` check: break a generated phantom, assert the line and exit 2."""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from autoseg.data.geometry import Geometry
from autoseg.data.imageio import read_image, write_image
from autoseg.data.verify import verify_cases, verify_dataset

RunCli = Callable[..., tuple[int, str, str]]


def _verify(run_cli: RunCli, path: Path, *extra: str) -> tuple[int, list[str], str]:
    code, out, err = run_cli("verify", path, "-np", "1", *extra)
    return code, [line for line in err.splitlines() if line.strip()], out


def _expect(run_cli: RunCli, path: Path, case: str | None, file: Path, *texts: str) -> list[str]:
    """Run verify; assert exit 2 and a problem line naming ``case`` and ``file``."""
    code, lines, out = _verify(run_cli, path)
    assert code == 2, (lines, out)
    where = f"{case} {file}: " if case else f"{file}: "
    hits = [line for line in lines if f"autoseg: error: {where}" in line]
    assert hits, f"no line naming {where!r} in {lines}"
    assert any(all(t in line for t in texts) for line in hits), (texts, hits)
    assert "Traceback" not in out + "\n".join(lines)
    assert "problem(s) found" in out
    return lines


def _edit_json(root: Path, **changes: object) -> None:
    path = root / "dataset.json"
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(json.dumps(data))


def _rewrite(path: Path, change: Callable[[np.ndarray, Geometry], tuple[np.ndarray, Geometry]]):
    array, geometry = read_image(path)
    array, geometry = change(array, geometry)
    write_image(path, array, geometry)


def _channel(root: Path, case: str, channel: int, split: str = "Tr") -> Path:
    return root / f"images{split}" / f"{case}_{channel:04d}.nii.gz"


def _label(root: Path, case: str, split: str = "Tr") -> Path:
    return root / f"labels{split}" / f"{case}.nii.gz"


def _roi(root: Path, case: str) -> Path:
    return root / "roisTr" / f"{case}.nii.gz"


def test_valid_dataset_passes_with_summary(run_cli: RunCli, verify_base: Path) -> None:
    code, lines, out = _verify(run_cli, verify_base)
    assert code == 0 and lines == []
    assert "no problems found" in out
    assert "3 training" in out and "1 test" in out
    assert "0 T1, 1 FLAIR" in out and "1 lesion" in out and "ROI masks: yes" in out


def test_missing_dataset_json(run_cli: RunCli, broken: Path) -> None:
    (broken / "dataset.json").unlink()
    _expect(run_cli, broken, None, broken, "no dataset.json")


def test_invalid_dataset_json(run_cli: RunCli, broken: Path) -> None:
    (broken / "dataset.json").write_text('{"channel_names": {"0": "T1"},,}')
    _expect(run_cli, broken, None, broken / "dataset.json", "invalid JSON", "line 1")


def test_missing_keys_are_listed(run_cli: RunCli, broken: Path) -> None:
    _edit_json(broken, numTraining=None, labels=None)
    lines = _expect(
        run_cli,
        broken,
        None,
        broken / "dataset.json",
        "'labels', 'numTraining'",
        "required keys: channel_names, labels, numTraining, file_ending",
    )
    assert len(lines) == 1


def test_bad_key_types(run_cli: RunCli, broken: Path) -> None:
    _edit_json(broken, channel_names={"1": "T1"}, file_ending="nii")
    lines = _expect(run_cli, broken, None, broken / "dataset.json", "'channel_names' must map")
    assert any("'file_ending' must be one of" in line for line in lines)


def test_num_training_disagrees(run_cli: RunCli, broken: Path) -> None:
    _edit_json(broken, numTraining=5)
    _expect(
        run_cli,
        broken,
        None,
        broken / "dataset.json",
        "numTraining is 5 but 3 training case(s) were found",
    )


@pytest.mark.parametrize("which", ["channel", "label", "roi"])
def test_missing_file(run_cli: RunCli, broken: Path, which: str) -> None:
    path = {
        "channel": _channel(broken, "phantom_001", 1),
        "label": _label(broken, "phantom_001"),
        "roi": _roi(broken, "phantom_001"),
    }[which]
    path.unlink()
    lines = _expect(run_cli, broken, "phantom_001", path, "file not found")
    assert len(lines) == 1  # reported once, although both the loader and the reader see it


def test_truncated_gz(run_cli: RunCli, broken: Path) -> None:
    path = _channel(broken, "phantom_002", 0)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _expect(run_cli, broken, "phantom_002", path, "cannot read image")


def test_unreadable_label(run_cli: RunCli, broken: Path) -> None:
    path = _label(broken, "phantom_000")
    path.write_bytes(gzip.compress(b"this is not a NIfTI file"))
    _expect(run_cli, broken, "phantom_000", path, "cannot read image")


def test_channel_shape_differs(run_cli: RunCli, broken: Path) -> None:
    path = _channel(broken, "phantom_001", 1)
    _rewrite(path, lambda a, g: (a[:-2], g.with_shape(a[:-2].shape)))
    _expect(run_cli, broken, "phantom_001", path, "shape (Z, Y, X)", "phantom_001_0000.nii.gz")


def test_label_shape_differs(run_cli: RunCli, broken: Path) -> None:
    path = _label(broken, "phantom_002")
    _rewrite(path, lambda a, g: (a[:, 1:], g.with_shape(a[:, 1:].shape)))
    _expect(run_cli, broken, "phantom_002", path, "shape (Z, Y, X)", "differs from")


@pytest.mark.parametrize(
    ("field", "text"),
    [("spacing", "spacing"), ("origin", "origin"), ("direction", "direction differs")],
)
def test_geometry_differs(run_cli: RunCli, broken: Path, field: str, text: str) -> None:
    def shift(array: np.ndarray, g: Geometry) -> tuple[np.ndarray, Geometry]:
        spacing, origin, direction = g.spacing, g.origin, g.direction
        if field == "spacing":
            spacing = (spacing[0] * 1.05, spacing[1], spacing[2])
        elif field == "origin":
            origin = (origin[0] + 0.5, origin[1], origin[2])
        else:
            direction = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
        return array, Geometry(g.shape, spacing, origin, direction)

    path = _roi(broken, "phantom_000")
    _rewrite(path, shift)
    _expect(run_cli, broken, "phantom_000", path, "geometry differs from", text)


def test_tiny_geometry_differences_are_tolerated(run_cli: RunCli, broken: Path) -> None:
    path = _label(broken, "phantom_000")
    _rewrite(
        path,
        lambda a, g: (
            a,
            Geometry(g.shape, g.spacing, (g.origin[0] + 1e-4, *g.origin[1:]), g.direction),
        ),
    )
    assert _verify(run_cli, broken)[0] == 0


def test_nan_and_inf_voxels(run_cli: RunCli, broken: Path) -> None:
    def poison(array: np.ndarray, g: Geometry) -> tuple[np.ndarray, Geometry]:
        array = array.astype(np.float32)
        array[0, 0, :3] = np.nan
        array[1, 1, 1] = np.inf
        return array, g

    path = _channel(broken, "phantom_001", 0)
    _rewrite(path, poison)
    _expect(run_cli, broken, "phantom_001", path, "3 NaN and 1 infinite voxel(s)")


def test_non_integer_labels(run_cli: RunCli, broken: Path) -> None:
    path = _label(broken, "phantom_000")
    _rewrite(path, lambda a, g: (a.astype(np.float32) * 0.5, g))
    _expect(run_cli, broken, "phantom_000", path, "non-integer values (0.5, 1.5)")


def test_float_labels_with_integral_values_are_fine(run_cli: RunCli, broken: Path) -> None:
    _rewrite(_label(broken, "phantom_000"), lambda a, g: (a.astype(np.float32), g))
    assert _verify(run_cli, broken)[0] == 0


def test_undeclared_label_values(run_cli: RunCli, broken: Path) -> None:
    def add_seven(array: np.ndarray, g: Geometry) -> tuple[np.ndarray, Geometry]:
        array = array.copy()
        array[0, 0, 0] = 7
        return array, g

    path = _label(broken, "phantom_001")
    _rewrite(path, add_seven)
    _expect(
        run_cli,
        broken,
        "phantom_001",
        path,
        "label values (7) are not declared",
        "declared: (0, 1, 2, 3)",
    )


def test_labels_that_skip_suggest_a_remapping(run_cli: RunCli, broken: Path) -> None:
    _edit_json(broken, labels={"background": 0, "lesion": 10, "core": 20, "satellite": 30})
    for split in ("Tr", "Ts"):
        for path in (broken / f"labels{split}").iterdir():
            _rewrite(path, lambda a, g: (a * 10, g))
    lines = _expect(
        run_cli,
        broken,
        None,
        broken / "dataset.json",
        "(0, 10, 20, 30) skip numbers",
        "remap 10 -> 1, 20 -> 2, 30 -> 3",
    )
    assert len(lines) == 1


def test_4d_channel_where_3d_expected(run_cli: RunCli, broken: Path) -> None:
    path = _channel(broken, "phantom_002", 1)
    image = nib.load(path)
    data = np.stack([np.asarray(image.dataobj)] * 2, axis=-1)
    nib.save(nib.Nifti1Image(data, image.affine), path)
    _expect(run_cli, broken, "phantom_002", path, "expected a 3D image, got a 4D image with 2")


def test_4d_label(run_cli: RunCli, broken: Path) -> None:
    path = _label(broken, "phantom_000")
    image = nib.load(path)
    data = np.stack([np.asarray(image.dataobj)] * 3, axis=-1)
    nib.save(nib.Nifti1Image(data, image.affine), path)
    _expect(run_cli, broken, "phantom_000", path, "got a 4D image with 3 volumes")


def test_negative_roi(run_cli: RunCli, broken: Path) -> None:
    path = _roi(broken, "phantom_001")
    _rewrite(path, lambda a, g: (a.astype(np.int16) * 255 - 1, g))
    _expect(run_cli, broken, "phantom_001", path, "ROI mask holds negative values", "(-1, 254)")


def test_duplicate_case_ids(run_cli: RunCli, broken: Path) -> None:
    manifest = broken / "cases.csv"
    rows = ["case,T1,FLAIR,label"]
    for case in ("phantom_000", "phantom_001", "phantom_001"):
        rows.append(
            f"{case},imagesTr/{case}_0000.nii.gz,imagesTr/{case}_0001.nii.gz,labelsTr/{case}.nii.gz"
        )
    manifest.write_text("\n".join(rows) + "\n")
    _expect(
        run_cli, manifest, "phantom_001", manifest, "used by 2 training cases", "must be unique"
    )


def test_empty_dataset(run_cli: RunCli, broken: Path) -> None:
    shutil.rmtree(broken / "imagesTr")
    shutil.rmtree(broken / "labelsTr")
    shutil.rmtree(broken / "roisTr")
    lines = _expect(run_cli, broken, None, broken / "dataset.json", "no training cases")
    assert any("numTraining is 3 but 0" in line for line in lines)


def test_bad_file_names_and_orphan_labels(run_cli: RunCli, broken: Path) -> None:
    stray = broken / "imagesTr" / "phantom_000.nii.gz"
    shutil.copy(_channel(broken, "phantom_000", 0), stray)
    extra = broken / "imagesTr" / "phantom_000_0002.nii.gz"
    shutil.copy(_channel(broken, "phantom_000", 0), extra)
    orphan = broken / "labelsTr" / "ghost.nii.gz"
    shutil.copy(_label(broken, "phantom_000"), orphan)
    (broken / "imagesTr" / "._phantom_000_0000.nii.gz").write_bytes(b"macOS junk")
    lines = _expect(run_cli, broken, None, stray, "does not follow {case}_{XXXX}.nii.gz")
    assert any(f"phantom_000 {extra}: channel 0002 is not declared" in line for line in lines)
    assert any(f"ghost {orphan}: label map has no images" in line for line in lines)
    assert not any("._phantom" in line for line in lines)


def test_groups_naming_unknown_cases(run_cli: RunCli, broken: Path) -> None:
    _edit_json(broken, groups={"phantom_000": "p1", "nobody": "p2"})
    _expect(run_cli, broken, "nobody", broken / "dataset.json", "'groups' names a case")


def test_test_cases_are_checked_too(run_cli: RunCli, broken: Path) -> None:
    path = _label(broken, "phantom_003", split="Ts")
    _rewrite(path, lambda a, g: (a + 5, g))
    _expect(run_cli, broken, "phantom_003", path, "not declared")


def test_every_problem_is_reported(run_cli: RunCli, broken: Path) -> None:
    _channel(broken, "phantom_000", 0).unlink()
    _rewrite(_roi(broken, "phantom_001"), lambda a, g: (a * 0, g))
    _edit_json(broken, numTraining=4)
    code, lines, out = _verify(run_cli, broken)
    assert code == 2 and len(lines) == 3
    assert "3 problem(s) found (2 case(s) affected)" in out


def test_missing_dataset_path(run_cli: RunCli, tmp_path: Path) -> None:
    code, lines, _ = _verify(run_cli, tmp_path / "nowhere")
    assert code == 2 and lines == [f"autoseg: error: {tmp_path / 'nowhere'}: dataset not found"]


def test_json_report(run_cli: RunCli, broken: Path) -> None:
    path = _label(broken, "phantom_000")
    _rewrite(path, lambda a, g: (a.astype(np.float32) + 0.25, g))
    code, out, err = run_cli("verify", broken, "--json", "-np", "1")
    report = json.loads(out)
    assert code == 2 and err == ""
    assert report["ok"] is False and report["format"] == "nnunet" and report["num_problems"] == 1
    assert report["problems"] == [
        {
            "case_id": "phantom_000",
            "path": str(path),
            "check": "non_integer_label",
            "message": "label map holds non-integer values (0.25, 1.25, 2.25, 3.25); "
            "labels must be integers",
            "severity": "error",
        }
    ]
    assert report["warnings"] == []
    assert report["summary"]["num_cases"] == 3


def test_json_report_of_a_valid_dataset(run_cli: RunCli, verify_base: Path) -> None:
    code, out, _ = run_cli("verify", verify_base, "--json", "-np", "1")
    summary = json.loads(out)["summary"]
    assert code == 0
    assert summary["labels"] == {"background": 0, "lesion": 1, "core": 2, "satellite": 3}
    assert summary["channel_names"] == ["T1", "FLAIR"]
    assert len(summary["shape_range"]) == 2 and summary["has_roi"] is True


def test_parallel_verify_finds_the_same_problems(broken: Path) -> None:
    _channel(broken, "phantom_001", 1).unlink()
    _rewrite(_label(broken, "phantom_002"), lambda a, g: (a + 9, g))
    serial = verify_dataset(broken, num_workers=1)
    parallel = verify_dataset(broken, num_workers=2)
    assert parallel.problems == serial.problems and len(serial.problems) == 2
    assert parallel.summary == serial.summary


def test_verify_cases_for_unlabelled_inputs(verify_base: Path, tmp_path: Path) -> None:
    report = verify_dataset(verify_base)
    assert report.dataset is not None
    cases = report.dataset.test_cases
    assert verify_cases(cases, report.dataset) == []
    bad = tmp_path / "x_0000.nii.gz"
    array, geometry = read_image(cases[0].channels[0])
    write_image(bad, np.full_like(array, np.nan, dtype=np.float32), geometry)
    from dataclasses import replace

    problems = verify_cases(
        [replace(cases[0], channels=(bad, cases[0].channels[1]))], report.dataset
    )
    assert [p.check for p in problems] == ["non_finite"]
