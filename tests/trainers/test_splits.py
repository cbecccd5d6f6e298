"""Splits: deterministic, grouped by patient, stratified by class, reused from splits.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoseg.errors import DatasetError, PlansError
from autoseg.trainers.splits import load_or_make_splits, make_splits

CASES = [f"case_{i:02d}" for i in range(23)]


def test_every_case_is_validated_exactly_once_and_sizes_balance() -> None:
    splits = make_splits(CASES)
    vals = [c for f in splits.folds for c in f.val]
    assert sorted(vals) == CASES
    sizes = [len(f.val) for f in splits.folds]
    assert max(sizes) - min(sizes) <= 1
    for fold in splits.folds:
        assert set(fold.train) | set(fold.val) == set(CASES)
        assert not set(fold.train) & set(fold.val)
    assert make_splits(CASES) == splits  # deterministic
    assert make_splits(CASES, seed=1) != splits


def test_groups_never_straddle_folds() -> None:
    groups = {c: f"patient_{i // 3}" for i, c in enumerate(CASES)}  # 3 scans per patient
    splits = make_splits(CASES, groups=groups)
    for fold in splits.folds:
        val_patients = {groups[c] for c in fold.val}
        assert not val_patients & {groups[c] for c in fold.train}


def test_a_rare_class_reaches_every_validation_set() -> None:
    classes = {c: (1,) for c in CASES}
    rare = CASES[3:8]  # class 2 in exactly 5 cases
    for c in rare:
        classes[c] = (1, 2)
    splits = make_splits(CASES, classes=classes)
    for fold in splits.folds:
        assert len(set(fold.val) & set(rare)) == 1


def test_too_few_cases_suggest_fold_all() -> None:
    with pytest.raises(DatasetError, match=r"at least 5 cases.*fold=all"):
        make_splits(CASES[:4])
    groups = {c: "one patient" if i < 20 else c for i, c in enumerate(CASES)}
    with pytest.raises(DatasetError, match="found 4"):
        make_splits(CASES, groups=groups)


def test_splits_json_is_reused_hand_edits_respected_and_rebuilt_when_cases_change(
    tmp_path: Path,
) -> None:
    path = tmp_path / "splits.json"
    first = load_or_make_splits(path, CASES)
    data = json.loads(path.read_text())
    assert data["num_folds"] == 5 and len(data["folds"]) == 5 and "inputs" in data
    # a hand edit that swaps two cases between folds is kept
    a, b = data["folds"][0]["val"][0], data["folds"][1]["val"][0]
    for k, fold in enumerate(data["folds"]):
        fold["val"] = [b if c == a else a if c == b else c for c in fold["val"]]
        fold["train"] = sorted(set(CASES) - set(fold["val"]))
        data["folds"][k] = fold
    path.write_text(json.dumps(data))
    edited = load_or_make_splits(path, CASES)
    assert b in edited.folds[0].val and edited != first
    rebuilt = load_or_make_splits(path, [*CASES, "case_new"])
    assert "case_new" in {c for f in rebuilt.folds for c in f.val}
    path.write_text("{not json")
    with pytest.raises(PlansError, match="not valid JSON"):
        load_or_make_splits(path, CASES)


def test_fold_all_and_range() -> None:
    splits = make_splits(CASES)
    everything = splits.fold("all")
    assert everything.train == everything.val == tuple(CASES)
    from autoseg.errors import ConfigError

    with pytest.raises(ConfigError, match="out of range"):
        splits.fold(5)


def test_a_users_single_fold_is_honoured_in_either_form(tmp_path: Path) -> None:
    path = tmp_path / "splits.json"
    nnunet = [{"train": CASES[:15], "val": CASES[15:20]}]  # nnU-Net's splits_final.json
    path.write_text(json.dumps(nnunet))
    splits = load_or_make_splits(path, CASES)
    assert splits.num_folds == 1 and splits.fold(0).train == tuple(CASES[:15])
    assert splits.fold(0).val == tuple(CASES[15:20])  # cases 20..22: in no set of fold 0
    assert json.loads(path.read_text()) == nnunet  # honoured as given, never rewritten
    path.write_text(json.dumps({"folds": [{"val": CASES[:3]}, {"val": CASES[3:6]}]}))
    two = load_or_make_splits(path, CASES)
    assert two.num_folds == 2 and two.fold(1).train == tuple(CASES[:3] + CASES[6:])
    from autoseg.errors import ConfigError

    with pytest.raises(ConfigError, match=r"fold 2 out of range; folds are 0..1"):
        two.fold(2)


@pytest.mark.parametrize(
    ("folds", "message"),
    [
        ([{"val": CASES[:3]}, {"val": CASES[2:5]}], "case 'case_02' validates in folds 0 and 1"),
        ([{"train": CASES[:4], "val": CASES[3:6]}], "fold 0 trains and validates on 'case_03'"),
        (
            [{"val": ["case_00", "ghost", "case_99"]}],
            r"fold 0 names 2 case\(s\) that are not training cases of the dataset: 'case_99', "
            "'ghost'",
        ),
        ([{"val": []}], "fold 0 has no validation case"),
        ([{"val": ["case_00", "case_00"]}], "fold 0 'val' lists 'case_00' twice"),
        ([{"val": CASES[:2], "test": []}], "fold 0 must be an object with a 'val' list"),
    ],
)
def test_bad_user_splits_are_refused_clearly(
    tmp_path: Path, folds: list[dict[str, object]], message: str
) -> None:
    path = tmp_path / "splits.json"
    path.write_text(json.dumps(folds))
    with pytest.raises(PlansError, match=message) as info:
        load_or_make_splits(path, CASES)
    assert info.value.path == path
    assert json.loads(path.read_text()) == folds  # never replaced by a new split


def test_fixed_validation_sets_become_the_folds(tmp_path: Path) -> None:
    path = tmp_path / "splits.json"
    splits = load_or_make_splits(path, CASES[:3], fixed=[CASES[:1]])  # 3 cases: no 5-fold need
    assert splits.num_folds == 1
    assert (splits.fold(0).train, splits.fold(0).val) == (tuple(CASES[1:3]), tuple(CASES[:1]))
    data = json.loads(path.read_text())
    assert data["folds"] == [{"train": CASES[1:3], "val": CASES[:1]}] and data["inputs"] == {}
    assert load_or_make_splits(path, CASES[:3]) == splits  # then honoured as a user's split
