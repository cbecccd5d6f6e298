"""The case-id rule (plain file-name tokens) and output paths that stay inside their root."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoseg.errors import DatasetError
from autoseg.names import MAX_CASE_ID_BYTES, case_id_problem, inside


@pytest.mark.parametrize("case_id", ["case_001", "BraTS-GLI-00001-000", "patient 7", "é_1", "a.b"])
def test_plain_ids_pass(case_id: str) -> None:
    assert case_id_problem(case_id) is None


@pytest.mark.parametrize(
    ("case_id", "what"),
    [
        ("", "empty"),
        ("../../x", "path separator"),
        ("/abs/path/x", "path separator"),
        ("a\\b", "path separator"),
        ("..", "'..'"),
        ("x..y", "'..'"),
        (".hidden", "starts with '.'"),
        (".tmp-abc-1-x", "starts with '.'"),
        ("a\nb", "control character"),
        ("a\x00b", "control character"),
        ("a\u202eb", "control character"),  # right-to-left override
        (" a", "white space"),
        ("x" * (MAX_CASE_ID_BYTES + 1), "longer than"),
    ],
)
def test_ids_that_cannot_name_files_are_refused(case_id: str, what: str) -> None:
    problem = case_id_problem(case_id)
    assert problem is not None and what in problem
    assert "\n" not in problem and "\x00" not in problem  # shown escaped, on one line


def test_inside_joins_plain_ids_and_refuses_escapes(tmp_path: Path) -> None:
    assert inside(tmp_path, "case_1", "_seg.npy") == tmp_path / "case_1_seg.npy"
    for bad in ("../x", "/etc/x", ".."):
        with pytest.raises(DatasetError, match="refusing to write outside"):
            inside(tmp_path, bad, ".npy")
    with pytest.raises(DatasetError, match="not a plain file name"):
        inside(tmp_path, "case", "/../x")
