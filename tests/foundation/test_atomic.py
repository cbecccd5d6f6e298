from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from autoseg.atomic import atomic_path, atomic_save_npy, atomic_write_json, to_jsonable


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
