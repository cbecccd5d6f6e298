"""The verification cache: unchanged cases are not read again, changed or damaged ones are."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from autoseg.data import verify, verify_cache
from autoseg.data.verify import verify_dataset


@pytest.fixture
def dataset(tiny_dataset: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "ds"
    shutil.copytree(tiny_dataset, copy)
    return copy


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The case ids whose images verification reads."""
    seen: list[str] = []
    real = verify.inspect_case

    def counting(case, expect):  # type: ignore[no-untyped-def]
        seen.append(case.case_id)
        return real(case, expect)

    monkeypatch.setattr(verify, "inspect_case", counting)
    return seen


def _image(dataset: Path, case: str) -> Path:
    return dataset / "imagesTr" / f"{case}_0000.nii.gz"


def _case_ids(dataset: Path) -> list[str]:
    return sorted(p.name[: -len("_0000.nii.gz")] for p in (dataset / "imagesTr").glob("*_0000*"))


def test_unchanged_cases_are_not_read_again(
    dataset: Path, tmp_path: Path, reads: list[str]
) -> None:
    cache = tmp_path / "verify.json"
    first = verify_dataset(dataset, cache=cache)
    assert first.ok and len(reads) == 8  # 6 training + 2 test cases
    reads.clear()
    again = verify_dataset(dataset, cache=cache)
    assert again.ok and reads == []
    assert again.summary == first.summary  # the summary is rebuilt from the cache


def test_a_touched_or_rewritten_case_is_read_again(
    dataset: Path, tmp_path: Path, reads: list[str]
) -> None:
    cache = tmp_path / "verify.json"
    verify_dataset(dataset, cache=cache)
    first, second = _case_ids(dataset)[:2]
    reads.clear()
    os.utime(_image(dataset, first))  # a new modification time
    assert verify_dataset(dataset, cache=cache).ok and reads == [first]
    # Same size and modification time, other first bytes: the header digest sees it.
    path = _image(dataset, second)
    stat, data = path.stat(), bytearray(path.read_bytes())
    data[20] ^= 0xFF  # inside the gzip header's extra/name region or the stream start
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    reads.clear()
    verify_dataset(dataset, cache=cache)
    assert reads == [second]


def test_a_damaged_file_is_still_caught(dataset: Path, tmp_path: Path) -> None:
    cache = tmp_path / "verify.json"
    assert verify_dataset(dataset, cache=cache).ok
    case = _case_ids(dataset)[0]
    path = _image(dataset, case)
    path.write_bytes(path.read_bytes()[:200])  # truncated
    report = verify_dataset(dataset, cache=cache)
    assert not report.ok
    assert any(p.case_id == case and p.path == path for p in report.problems)
    again = verify_dataset(dataset, cache=cache)  # the problem is cached, not forgotten
    assert not again.ok and again.problems == report.problems


def test_other_checks_or_a_damaged_cache_verify_everything(
    dataset: Path, tmp_path: Path, reads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "verify.json"
    verify_dataset(dataset, cache=cache)
    reads.clear()
    monkeypatch.setattr(verify_cache, "checks_digest", lambda: "other checks")
    verify_dataset(dataset, cache=cache)
    assert len(reads) == 8
    reads.clear()
    cache.write_text("{ not json")
    assert verify_dataset(dataset, cache=cache).ok and len(reads) == 8


def test_the_cache_records_every_case_and_the_checks(dataset: Path, tmp_path: Path) -> None:
    import json

    cache = tmp_path / "verify.json"
    verify_dataset(dataset, cache=cache)
    data = json.loads(cache.read_text())
    assert data["ok"] is True and data["checks"] == verify_cache.checks_digest()
    assert sorted(data["cases"]) == sorted(_case_ids(dataset) + _test_ids(dataset))


def _test_ids(dataset: Path) -> list[str]:
    return sorted(p.name[: -len("_0000.nii.gz")] for p in (dataset / "imagesTs").glob("*_0000*"))


def test_replanning_reads_no_image(dataset: Path, tmp_path: Path, reads: list[str]) -> None:
    from autoseg.planner.workflow import run_plan
    from autoseg.workspace import Workspace

    workspace = Workspace(tmp_path / "work")
    run_plan(dataset, workspace, device="cpu")
    reads.clear()
    report = run_plan(dataset, workspace, device="cpu")
    assert reads == []
    assert report.fingerprint_reused and report.plans_reused


def test_cached_cases_report_the_same_problems_and_warnings(
    dataset: Path, tmp_path: Path, reads: list[str]
) -> None:
    import nibabel as nib
    import numpy as np

    constant, broken = (_image(dataset, case) for case in _case_ids(dataset)[:2])
    image = nib.load(constant)
    nib.save(nib.Nifti1Image(np.full(image.shape, 7, np.int16), image.affine), constant)
    broken.write_bytes(broken.read_bytes()[:200])  # truncated: a problem
    cache = tmp_path / "verify.json"
    fresh = verify_dataset(dataset, cache=cache)
    assert [w.check for w in fresh.warnings] == ["constant_image"]
    assert fresh.warnings[0].warning and not any(p.warning for p in fresh.problems)
    reads.clear()
    cached = verify_dataset(dataset, cache=cache)
    assert reads == []
    assert cached.problems == fresh.problems and cached.warnings == fresh.warnings
    assert cached.to_dict() == fresh.to_dict()  # severities included


@pytest.mark.parametrize("module", ["checks", "header_checks", "case_io", "imageio", "geometry"])
def test_every_module_of_the_checks_is_part_of_the_key(
    module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autoseg import data

    before = verify_cache.checks_digest()
    changed = tmp_path / f"{module}.py"
    changed.write_text("# another version of the checks\n")
    monkeypatch.setattr(getattr(data, module), "__file__", str(changed))
    assert verify_cache.checks_digest() != before
