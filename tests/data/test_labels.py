"""The dataset.json labels rule: integers are labels, lists of integers are regions."""

from __future__ import annotations

import pytest

from autoseg.data.labels import is_label_value, is_region_value, label_entries, region_entries

LABELS = {"background": 0, "lesion": 1, "core": 2, "whole": [1, 2], "bad": "x", "flag": True}


@pytest.mark.parametrize(
    ("value", "label", "region"),
    [(0, True, False), (3, True, False), (True, False, False), (1.0, False, False),
     ([1, 2], False, True), ([], False, False), ([1, "a"], False, False), ("1", False, False)],
)  # fmt: skip
def test_label_and_region_values(value: object, label: bool, region: bool) -> None:
    assert is_label_value(value) is label
    assert is_region_value(value) is region


def test_entries_split_labels_and_regions_in_file_order() -> None:
    assert label_entries(LABELS) == {"background": 0, "lesion": 1, "core": 2}
    assert list(label_entries(LABELS)) == ["background", "lesion", "core"]
    assert region_entries(LABELS) == {"whole": [1, 2]}
