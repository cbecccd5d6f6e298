"""Model archives that could not be trusted: a 2.5 MB zip that expanded to 2 GB before its
SHA-256 was checked, entries of other sizes than the manifest says, a full temporary disk
(a traceback), folders of killed runs left in the temporary folder, and pinned digests."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from autoseg.cli import main
from autoseg.errors import InputError, StorageError
from autoseg.inference import archive_reader
from autoseg.inference.archive_reader import MANIFEST_NAME, extract_model, opened_model
from autoseg.inference.model_archive import export_model
from autoseg.planner.plans import Plans
from autoseg.processes import host_tag
from autoseg.workspace import Workspace


def _archive(path: Path, entries: dict[str, bytes], *, sizes: bool = True, **extra: object) -> Path:
    files = {name: hashlib.sha256(data).hexdigest() for name, data in entries.items()}
    manifest: dict[str, object] = {"format": "autoseg-model", "schema_version": 1, "files": files}
    if sizes:
        manifest["sizes"] = {name: len(data) for name, data in entries.items()}
    manifest.update(extra)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        archive.writestr(MANIFEST_NAME, json.dumps(manifest))
    return path


@pytest.fixture
def temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private TMPDIR for the archives opened in the test."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder


@pytest.mark.parametrize("sizes", [True, False])
def test_a_zip_bomb_is_refused_before_a_byte_is_extracted(tmp_path: Path, sizes: bool) -> None:
    bomb = _archive(tmp_path / "bomb.zip", {"plans.json": bytes(40 << 20)}, sizes=sizes)
    assert bomb.stat().st_size < 100_000  # 40 MiB of zeros, honestly hashed
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"would expand \d+ times .* likely zip bomb"):
        extract_model(bomb, out)
    assert not list(out.rglob("*"))


def test_an_entry_of_another_size_than_the_manifest_says(tmp_path: Path) -> None:
    manifest = {"format": "autoseg-model", "schema_version": 1, "sizes": {"plans.json": 1}}
    manifest["files"] = {"plans.json": hashlib.sha256(b"{}").hexdigest()}
    with zipfile.ZipFile(tmp_path / "n.zip", "w") as archive:
        archive.writestr("plans.json", b"{}")
        archive.writestr(MANIFEST_NAME, json.dumps(manifest))
    with pytest.raises(InputError, match=r"holds 2 bytes but the manifest says 1"):
        extract_model(tmp_path / "n.zip", tmp_path / "out")


def test_total_size_is_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _archive(tmp_path / "m.zip", {"plans.json": b"{}" * 600})
    monkeypatch.setattr(archive_reader, "MAX_EXTRACTED_BYTES", 1000)
    with pytest.raises(InputError, match=r"more than 0 GiB; refusing it"):
        extract_model(path, tmp_path / "out")


def test_a_full_temporary_disk_is_one_line(
    tmp_path: Path, temp_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _archive(tmp_path / "m.zip", {"plans.json": b"{}" * 100})
    real = shutil.disk_usage
    monkeypatch.setattr(
        archive_reader.shutil,
        "disk_usage",
        lambda p: real(p)._replace(free=1000) if str(p).startswith(str(temp_dir)) else real(p),
    )
    expected = r"needs 0 MB but 0 MB are free here; set TMPDIR"
    with pytest.raises(StorageError, match=expected), opened_model(path):
        pass
    assert list(temp_dir.iterdir()) == []


def test_writing_into_a_really_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root): the full disk is untested")
    try:
        entries = {"plans.json": os.urandom(600_000)}  # incompressible, more than the disk
        path = _archive(tmp_path / "m.zip", entries)
        real = shutil.disk_usage  # statvfs would refuse early: check the write itself too
        monkeypatch.setattr(
            archive_reader.shutil, "disk_usage", lambda p: real(p)._replace(free=1 << 40)
        )
        with pytest.raises(StorageError, match=r"No space left on device"):
            extract_model(path, small / "out")
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_leftover_folders_of_killed_runs_are_removed(
    tmp_path: Path, temp_dir: Path, planned: tuple[Path, Plans],
    workspace_factory: Callable[..., Workspace],
) -> None:  # fmt: skip
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = temp_dir / f"autoseg-model-{host_tag()}-{dead.pid}-abc123"
    (leftover / "results").mkdir(parents=True)
    alive = temp_dir / f"autoseg-model-{host_tag()}-{os.getpid()}-def456"
    alive.mkdir()
    other = temp_dir / "autoseg-modelling-notes"
    other.mkdir()
    ws = workspace_factory(tmp_path / "w", planned[1], folds={"unet3d": (0,)})
    summary = export_model(ws, tmp_path / "model.zip", config="unet3d")
    with opened_model(summary.path) as opened:
        assert opened.plans_json.is_file()
        assert sorted(p.name for p in temp_dir.iterdir()) == sorted(
            [alive.name, other.name, opened.root.name]
        )
    assert sorted(p.name for p in temp_dir.iterdir()) == sorted([alive.name, other.name])


def test_pinned_archive_digest(
    tmp_path: Path, planned: tuple[Path, Plans], workspace_factory: Callable[..., Workspace],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    ws = workspace_factory(tmp_path / "w", planned[1], folds={"unet3d": (0,)})
    capsys.readouterr()
    argv = ["export-model", "--work", str(ws.root), "--config", "unet3d"]
    assert main([*argv, "--out", str(tmp_path / "model.zip")]) == 0
    digest = hashlib.sha256((tmp_path / "model.zip").read_bytes()).hexdigest()
    assert f"SHA-256 {digest} (predict --model-sha256 checks it)" in capsys.readouterr().out
    images = tmp_path / "images"
    shutil.copytree(planned[0] / "imagesTs", images)
    predict = ["predict", "-i", str(images), "--model", str(tmp_path / "model.zip"), "--no-tta"]
    predict += ["--threads", "1", "-np", "0"]
    wrong = "0" * 64
    assert main([*predict, "-o", str(tmp_path / "a"), "--model-sha256", wrong]) == 2
    err = capsys.readouterr().err
    assert f"the archive's SHA-256 is {digest}, not the pinned {wrong}" in err
    assert not (tmp_path / "a").exists()
    assert main([*predict, "-o", str(tmp_path / "b"), "--model-sha256", digest.upper()]) == 0
    assert main(["export-model", *argv[1:], "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"autoseg: error: {tmp_path}: --out is a folder; give the archive's file name, e.g. "
        f"{tmp_path / 'model.zip'} (see 'autoseg export-model --help')"
    )
