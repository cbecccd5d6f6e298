from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from autoseg.atomic import (
    atomic_path,
    atomic_save_npy,
    atomic_write_json,
    check_writable,
    temp_owner,
    temporary_folder,
    to_jsonable,
)
from autoseg.errors import StorageError
from autoseg.leftovers import LEFTOVER_AGE_SECONDS, clean_temporaries
from autoseg.processes import host_tag


def test_failed_write_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "plans.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["plans.json"]


def test_temp_name_keeps_the_extension(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "case.nii.gz") as tmp:
        assert tmp.name.endswith("case.nii.gz") and tmp.parent == tmp_path
        tmp.write_bytes(b"x")
    assert (tmp_path / "case.nii.gz").read_bytes() == b"x"


def test_npy_is_memory_mappable(tmp_path: Path) -> None:
    atomic_save_npy(tmp_path / "a.npy", np.arange(6, dtype=np.float32).reshape(2, 3))
    mapped = np.load(tmp_path / "a.npy", mmap_mode="r")
    assert mapped.shape == (2, 3) and mapped[1, 2] == 5


def test_to_jsonable_converts_numpy_and_tuples() -> None:
    data = {
        "a": np.int64(3),
        "b": (np.float32(0.5), Path("/x")),
        "c": np.arange(2),
        "d": float("nan"),
    }
    assert json.loads(json.dumps(to_jsonable(data))) == {
        "a": 3,
        "b": [0.5, "/x"],
        "c": [0, 1],
        "d": None,
    }


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """Run the test under each of these umasks (restored afterwards)."""
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def test_artefacts_get_the_mode_open_would_give(tmp_path: Path, umask: int) -> None:
    """mkstemp made every artefact 0600 whatever the umask; open() gives 0666 & ~umask."""
    atomic_write_json(tmp_path / "plans.json", {"a": 1})
    atomic_save_npy(tmp_path / "case.npy", np.zeros(3))
    with open(tmp_path / "reference.txt", "w") as handle:
        handle.write("x")
    expected = stat.S_IMODE((tmp_path / "reference.txt").stat().st_mode)
    assert expected == 0o666 & ~umask
    for name in ("plans.json", "case.npy"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == expected, name
    with temporary_folder(tmp_path / "dataset") as folder:
        (folder / "x").write_text("x")
    assert stat.S_IMODE((tmp_path / "dataset").stat().st_mode) == 0o777 & ~umask


def test_temporaries_name_their_process_and_leftovers_are_removed(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "case.nii.gz") as tmp:
        assert temp_owner(tmp.name) == (host_tag(), os.getpid())
        tmp.write_bytes(b"x")
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = tmp_path / f".tmp-{host_tag()}-{dead.pid}-0123abcd-case.npy"
    leftover.write_bytes(b"half")
    running = tmp_path / f".tmp-{host_tag()}-{os.getpid()}-0123abcd-other.npy"
    running.write_bytes(b"being written")
    old_style = tmp_path / ".tmp-k2j3_x9a-plans.json"  # mkstemp's name: no owner recorded
    old_style.write_text("{")
    fresh_old_style = tmp_path / ".tmp-aaaaaaaa-best.json"
    fresh_old_style.write_text("{")
    hour_ago = time.time() - LEFTOVER_AGE_SECONDS - 60
    os.utime(old_style, (hour_ago, hour_ago))
    half_folder = tmp_path / f".tmp-{host_tag()}-{dead.pid}-0123abcd-Dataset001"
    (half_folder / "imagesTr").mkdir(parents=True)
    removed = clean_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == sorted(
        [leftover.name, old_style.name, half_folder.name]
    )
    assert running.exists() and fresh_old_style.exists() and (tmp_path / "case.nii.gz").exists()


def test_a_full_or_read_only_disk_is_a_storage_error(tmp_path: Path) -> None:
    def full(*_: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))

    target = tmp_path / "plans.json"
    with pytest.raises(StorageError) as raised, atomic_path(target) as tmp:
        full()
    assert str(raised.value) == (
        f"{target}: cannot write (No space left on device; free some space or write elsewhere)"
    )
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError, match="cannot create the folder: a file is in the way"):
        atomic_write_json(tmp_path / "file" / "sub" / "x.json", {})
    with pytest.raises(StorageError, match="cannot create the folder: a file is in the way"):
        check_writable(tmp_path / "file")
