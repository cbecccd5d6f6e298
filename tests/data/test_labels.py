"""The dataset.json labels rule: integers are labels, lists of integers are regions."""

from __future__ import annotations

import numpy as np
import pytest

from autoseg.data.label_names import score_targets
from autoseg.data.labels import (
    is_label_value,
    is_region_value,
    label_entries,
    labels_from_probabilities,
    parse_label_scheme,
    region_entries,
)

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


BRATS = {"background": 0, "whole tumour": [1, 2, 3], "tumour core": [2, 3], "enhancing": 3}


def test_regions_class_order_makes_every_entry_a_region_named_labels_after_their_painter() -> None:
    scheme, problems = parse_label_scheme(BRATS, [1, 2, 3])
    assert problems == []
    assert scheme.regions == {"whole tumour": (1, 2, 3), "tumour core": (2, 3), "enhancing": (3,)}
    assert list(scheme.regions) == ["whole tumour", "tumour core", "enhancing"]  # output order
    assert scheme.regions_class_order == (1, 2, 3) and scheme.ignore_label is None
    assert scheme.labels == {"background": 0, "whole tumour": 1, "tumour core": 2, "enhancing": 3}


def test_without_regions_class_order_regions_are_for_evaluation_only() -> None:
    scheme, problems = parse_label_scheme(BRATS)
    assert problems == [] and scheme.regions_class_order is None
    assert scheme.regions == {"whole tumour": (1, 2, 3), "tumour core": (2, 3)}
    assert scheme.labels == {"background": 0, "enhancing": 3, "label_1": 1, "label_2": 2}


@pytest.mark.parametrize(
    ("labels", "order", "message"),
    [
        (BRATS, [1, 2], "one label value per region (3), got 2"),
        (BRATS, [1, 2, 7], "must paint label values the regions use ([1, 2, 3]), not [7]"),
        (BRATS, "1,2,3", "must be a list of label values"),
        ({"background": 0, "a": 1, "b": 2}, [1, 2], "no label is a region"),
        ({"background": 0, "w": [0, 1], "c": [1, 2]}, [1, 2], "must not hold background 0"),
    ],
)
def test_region_scheme_problems(labels: dict[str, object], order: object, message: str) -> None:
    _, problems = parse_label_scheme(labels, order)
    assert any(message in p for p in problems), problems


def test_the_ignore_label_is_the_highest_value_and_no_class() -> None:
    scheme, problems = parse_label_scheme({"background": 0, "a": 1, "b": 2, "ignore": 3})
    assert problems == [] and scheme.ignore_label == 3 and scheme.labels["ignore"] == 3
    targets = score_targets(scheme.labels, scheme.regions, ignore_label=3)
    assert [(t.key, t.name, t.kind) for t in targets] == [("1", "a", "label"), ("2", "b", "label")]
    regions, problems = parse_label_scheme({**BRATS, "ignore": 4}, [1, 2, 3])
    assert problems == [] and regions.ignore_label == 4 and "ignore" not in regions.regions
    assert regions.labels["ignore"] == 4
    _, problems = parse_label_scheme({"background": 0, "ignore": 1, "a": 2})
    assert problems == [
        "the 'ignore' label must have the highest label value; got ignore=1 with other "
        "values [0, 2] (declare it as 3)"
    ]
    _, problems = parse_label_scheme({"background": 0, "a": 1, "ignore": [2]})
    assert problems == ["the 'ignore' label must be one integer value, got [2]"]


def test_score_targets_and_titles() -> None:
    labels = {"background": 0, "Anterior": 1, "Posterior": 2}
    targets = score_targets(labels, {"both": (1, 2)})
    assert [t.title for t in targets] == ["Anterior (1)", "Posterior (2)"]  # regions: extra rows
    scheme, _ = parse_label_scheme(BRATS, [1, 2, 3])
    regions = score_targets(scheme.labels, scheme.regions, region_based=True)
    assert [(t.key, t.values, t.title) for t in regions] == [
        ("whole tumour", (1, 2, 3), "whole tumour"),
        ("tumour core", (2, 3), "tumour core"),
        ("enhancing", (3,), "enhancing"),
    ]
    assert score_targets({"background": 0, "label_1": 1}, {})[0].title == "label_1 (1)"


def test_labels_from_probabilities_argmax_or_painted_regions() -> None:
    classes = np.array([[[[0.2, 0.5]]], [[[0.8, 0.5]]]], dtype=np.float32)
    assert labels_from_probabilities(classes).tolist() == [[[1, 0]]]  # ties: the lower class
    regions = np.array(
        [[[[0.9, 0.9, 0.9, 0.1]]], [[[0.2, 0.7, 0.7, 0.9]]], [[[0.1, 0.4, 0.6, 0.9]]]],
        dtype=np.float32,
    )  # whole, core, enhancing; the last voxel: core and enhancing outside "whole"
    painted = labels_from_probabilities(regions, (1, 2, 3))
    assert painted.dtype == np.uint8 and painted.tolist() == [[[1, 2, 3, 3]]]
    with pytest.raises(ValueError, match="3 region probabilities but 2"):
        labels_from_probabilities(regions, (1, 2))
