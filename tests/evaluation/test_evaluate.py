"""evaluate_folder, summarize, write_evaluation, region specs and the ``evaluate`` command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autoseg import cli
from autoseg.cli import main
from autoseg.data.geometry import Geometry
from autoseg.data.imageio import write_image
from autoseg.errors import InputError
from autoseg.evaluation import (
    ROW_KEYS,
    compute_case_metrics,
    evaluate_and_write,
    evaluate_folder,
    format_table,
    load_regions,
    read_dataset_json,
    read_dataset_targets,
    summarize,
    write_evaluation,
)

SPACING = (2.0, 1.0, 0.5)
SHAPE = (6, 8, 10)


def _geometry(spacing=SPACING, shape=SHAPE) -> Geometry:
    return Geometry(shape, spacing, (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))


def _maps(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A reference with labels 1 and 2 (2 only for odd seeds) and a perturbed prediction."""
    rng = np.random.default_rng(seed)
    ref = np.zeros(SHAPE, dtype=np.uint8)
    ref[1:4, 2:6, 2:8] = 1
    if seed % 2:
        ref[4:6, 1:3, 1:3] = 2
    pred = ref.copy()
    pred[rng.random(SHAPE) < 0.05] = 1
    pred[2, 3:5, 3:6] = 0
    return pred, ref


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    cases = {f"case_{i:03d}": _maps(i) for i in range(3)}
    for case_id, (pred, ref) in cases.items():
        write_image(pred_dir / f"{case_id}.nii.gz", pred, _geometry())
        write_image(gt_dir / f"{case_id}.nii.gz", ref, _geometry())
    (pred_dir / "case_000.npz").write_bytes(b"probabilities, ignored")
    (pred_dir / "summary.json").write_text("{}")
    return pred_dir, gt_dir, cases


def test_evaluate_folder_matches_compute_case_metrics(folders) -> None:
    pred_dir, gt_dir, cases = folders
    df = evaluate_folder(pred_dir, gt_dir, regions={"all": (1, 2)})
    assert list(df.columns) == ["case", *ROW_KEYS]
    # Default labels: union over references = {1, 2}; every case gets a row for each.
    assert list(df["target"]) == ["1", "2", "all"] * 3
    assert list(df["case"]) == [c for c in sorted(cases) for _ in range(3)]
    for case_id, (pred, ref) in cases.items():
        expected = compute_case_metrics(pred, ref, SPACING, [1, 2], {"all": [1, 2]})
        got = df[df["case"] == case_id].drop(columns="case").to_dict("records")
        for e, g in zip(expected, got):
            for key in ROW_KEYS:
                if isinstance(e[key], float) and math.isnan(e[key]):
                    assert math.isnan(g[key])
                else:
                    assert (
                        g[key] == pytest.approx(e[key])
                        if isinstance(e[key], float)
                        else g[key] == e[key]
                    )
    # case_000 has no label 2 anywhere: a both-empty row.
    row = df[(df["case"] == "case_000") & (df["target"] == "2")].iloc[0]
    assert math.isnan(row["dice"]) and row["pred_voxels"] == 0 and row["ref_voxels"] == 0


def test_evaluate_folder_in_parallel_gives_the_same_table(folders) -> None:
    pred_dir, gt_dir, _ = folders
    serial = evaluate_folder(pred_dir, gt_dir, [1, 2])
    parallel = evaluate_folder(pred_dir, gt_dir, [1, 2], num_workers=2)
    pd.testing.assert_frame_equal(serial, parallel)


def test_unmatched_files_are_named(folders) -> None:
    pred_dir, gt_dir, _ = folders
    (gt_dir / "case_002.nii.gz").rename(gt_dir / "other.nii.gz")
    with pytest.raises(InputError, match=r"have no reference.*case_002\.nii\.gz"):
        evaluate_folder(pred_dir, gt_dir)
    (pred_dir / "case_002.nii.gz").unlink()
    with pytest.raises(InputError, match=r"have no prediction.*other\.nii\.gz"):
        evaluate_folder(pred_dir, gt_dir)


@pytest.mark.parametrize(
    ("geometry", "problem"),
    [(_geometry(spacing=(2.0, 1.0, 0.6)), "spacing"), (_geometry(shape=(6, 8, 9)), "shape")],
)
def test_geometry_mismatch_names_case_and_file(folders, geometry, problem) -> None:
    pred_dir, gt_dir, _ = folders
    write_image(pred_dir / "case_001.nii.gz", np.zeros(geometry.shape, np.uint8), geometry)
    with pytest.raises(InputError, match=problem) as info:
        evaluate_folder(pred_dir, gt_dir)
    assert info.value.case_id == "case_001"
    assert info.value.path == pred_dir / "case_001.nii.gz"


def test_non_integer_prediction_is_rejected(folders) -> None:
    pred_dir, gt_dir, _ = folders
    write_image(pred_dir / "case_001.nii.gz", np.full(SHAPE, 0.5, np.float32), _geometry())
    with pytest.raises(InputError, match="non-integer") as info:
        evaluate_folder(pred_dir, gt_dir)
    assert info.value.case_id == "case_001"


def _table() -> pd.DataFrame:
    rows = [
        ("a", "1", "label", 0.8, 0.6, 2.0, 0.9, 1.0, 10, 8),
        ("b", "1", "label", 0.6, 0.4, 4.0, 0.7, -3.0, 5, 9),
        ("c", "1", "label", math.nan, math.nan, math.nan, math.nan, 0.0, 0, 0),
        ("a", "2", "label", 0.0, 0.0, 50.0, 0.0, 2.0, 4, 0),
        ("b", "2", "label", 0.5, 0.3, 6.0, 0.5, 0.0, 3, 3),
        ("c", "2", "label", 0.0, 0.0, 50.0, 0.0, -1.0, 0, 7),
        ("a", "wt", "region", 1.0, 1.0, 0.0, 1.0, 0.0, 8, 8),
    ]
    columns = [
        "case",
        "target",
        "kind",
        "dice",
        "iou",
        "hd95_mm",
        "nsd",
        "volume_difference_ml",
        "pred_voxels",
        "ref_voxels",
    ]
    return pd.DataFrame(rows, columns=columns)


def test_summarize_is_nan_aware_and_counts() -> None:
    summary = summarize(_table())
    one, two = summary["targets"]["1"], summary["targets"]["2"]
    assert summary["num_cases"] == 3 and list(summary["targets"]) == ["1", "2", "wt"]
    assert one["mean"]["dice"] == pytest.approx(0.7)  # NaN of case c left out
    assert one["median"]["hd95_mm"] == pytest.approx(3.0)
    assert one["std"]["dice"] == pytest.approx(0.1)
    assert one["mean"]["volume_difference_ml"] == pytest.approx(-2 / 3)
    assert (one["num_both_empty"], one["num_missed"], one["num_false_positive"]) == (1, 0, 0)
    assert (two["num_both_empty"], two["num_missed"], two["num_false_positive"]) == (0, 1, 1)
    assert two["mean"]["dice"] == pytest.approx(0.5 / 3)
    # Foreground mean: mean of the two label means; the region is not included.
    assert summary["foreground_mean"]["dice"] == pytest.approx((0.7 + 0.5 / 3) / 2)
    assert summary["targets"]["wt"]["kind"] == "region"


def test_summarize_all_nan_target_and_missing_columns() -> None:
    df = _table()
    df = df[df["target"] == "1"].iloc[2:]
    summary = summarize(df)
    assert math.isnan(summary["targets"]["1"]["mean"]["dice"])
    assert math.isnan(summary["foreground_mean"]["dice"])
    with pytest.raises(ValueError, match="nsd"):
        summarize(_table().drop(columns="nsd"))


def test_write_evaluation_round_trips(tmp_path: Path) -> None:
    df, summary = _table(), summarize(_table())
    csv_path, json_path = write_evaluation(df, summary, tmp_path / "out")
    back = pd.read_csv(csv_path, dtype={"target": str})
    pd.testing.assert_frame_equal(back, df)
    loaded = json.loads(json_path.read_text())
    assert loaded["targets"]["1"]["mean"]["dice"] == pytest.approx(0.7)
    assert summarize(df[df["case"] == "c"])["targets"]["1"]["mean"]["dice"] != 0.0
    assert loaded["schema_version"] == 1 and "autoseg_version" in loaded
    assert [p.name for p in sorted((tmp_path / "out").iterdir())] == ["metrics.csv", "summary.json"]


def test_format_table_lists_targets_and_dashes_for_nan() -> None:
    text = format_table(summarize(_table()))
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["target", "kind", "n"]
    row_one = next(line for line in lines if line.startswith("1 "))
    assert row_one.split()[:4] == ["1", "label", "2", "0.7000"]
    assert "foreground mean" in text and "1: 1 case(s) with both masks empty" in text
    nan_table = format_table(summarize(_table()[lambda d: d["case"] == "c"].iloc[:1]))
    assert " - " in nan_table


def test_region_specs(tmp_path: Path) -> None:
    assert load_regions('{"wt": [1, 2, 3], "et": 3}') == {"wt": (1, 2, 3), "et": (3,)}
    dataset = {
        "labels": {"background": 0, "edema": 1, "whole tumour": [1, 2, 3], "core": [2, 3]},
        "regions": {"enh": [3]},
    }
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps(dataset))
    expected = {"whole tumour": (1, 2, 3), "core": (2, 3), "enh": (3,)}
    assert load_regions(path) == expected
    assert read_dataset_json(path) == ([1], expected)
    with pytest.raises(InputError, match="neither an existing file nor a JSON"):
        load_regions("no_such_file.json")
    with pytest.raises(InputError, match="region 'x' must list"):
        load_regions('{"x": []}')
    with pytest.raises(InputError, match="region 'x' must list"):
        load_regions('{"x": [1, "2"]}')
    path.write_text("{not json")
    with pytest.raises(InputError, match="invalid JSON") as info:
        read_dataset_json(path)
    assert info.value.path == path


@pytest.fixture
def only_evaluate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register only ``evaluate``, so these tests do not depend on other commands' modules."""
    monkeypatch.setattr(cli, "COMMANDS", {"evaluate": cli.COMMANDS["evaluate"]})


@pytest.mark.usefixtures("only_evaluate")
def test_cli_evaluate_writes_files_and_prints_table(folders, tmp_path, capsys) -> None:
    pred_dir, gt_dir, _ = folders
    dataset = tmp_path / "dataset.json"
    dataset.write_text(json.dumps({"labels": {"background": 0, "a": 1, "b": 2, "ab": [1, 2]}}))
    out = tmp_path / "eval"
    status = main(
        [
            "evaluate",
            str(pred_dir),
            str(gt_dir),
            "--dataset-json",
            str(dataset),
            "--regions",
            '{"only one": [1]}',
            "--nsd-tolerance",
            "2",
            "--out",
            str(out),
            "-np",
            "1",
        ]
    )
    assert status == 0
    printed = capsys.readouterr().out
    assert "ab" in printed and "only one" in printed and "foreground mean" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["targets"]) == ["1", "2", "ab", "only one"]
    assert summary["settings"]["nsd_tolerance_mm"] == 2.0
    assert summary["settings"]["labels"] == [1, 2]
    assert len(pd.read_csv(out / "metrics.csv")) == 3 * 4


@pytest.mark.usefixtures("only_evaluate")
def test_cli_evaluate_bad_input_is_one_line_and_exit_2(folders, capsys) -> None:
    pred_dir, gt_dir, _ = folders
    (pred_dir / "case_001.nii.gz").unlink()
    assert main(["evaluate", str(pred_dir), str(gt_dir), "-np", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("autoseg: error:")
    assert "case_001.nii.gz" in err[0]
    assert not (pred_dir / "metrics.csv").exists()
    assert main(["evaluate", str(pred_dir), str(gt_dir), "--nsd-tolerance", "-1"]) == 2


def test_dataset_json_names_the_labels_beside_their_values(folders, tmp_path) -> None:
    pred_dir, gt_dir, _ = folders
    dataset = tmp_path / "dataset.json"
    dataset.write_text(json.dumps({"labels": {"background": 0, "Anterior": 1, "Posterior": 2}}))
    summary = evaluate_and_write(pred_dir, gt_dir, dataset_json=dataset, out_dir=tmp_path / "e")
    table = pd.read_csv(tmp_path / "e" / "metrics.csv")
    assert list(table.columns[:4]) == ["case", "target", "name", "kind"]
    assert dict(zip(table["target"].astype(str), table["name"])) == {
        "1": "Anterior",
        "2": "Posterior",
    }
    lines = format_table(summary).splitlines()
    assert lines[0].split()[:4] == ["target", "name", "kind", "n"]
    assert next(line for line in lines if line.startswith("1 ")).split()[:3] == [
        "1",
        "Anterior",
        "label",
    ]


def test_region_based_dataset_json_scores_regions_without_ignored_voxels(tmp_path) -> None:
    """regions_class_order: only the regions are scored, and their mean is the score; the
    ignore label's voxels count nowhere."""
    ref = np.zeros(SHAPE, dtype=np.uint8)
    ref[1:4, 2:6, 2:8] = 1
    ref[2:3, 3:5, 3:6] = 2
    pred = ref.copy()
    ref[5] = 3  # unannotated slice, where the prediction says 1
    pred[5] = 1
    for folder, array in (("pred", pred), ("gt", ref)):
        write_image(tmp_path / folder / "c.nii.gz", array, _geometry())
    labels = {"background": 0, "whole": [1, 2], "core": 2, "ignore": 3}
    dataset = tmp_path / "dataset.json"
    dataset.write_text(json.dumps({"labels": labels, "regions_class_order": [1, 2]}))
    summary = evaluate_and_write(tmp_path / "pred", tmp_path / "gt", dataset_json=dataset)
    assert list(summary["targets"]) == ["whole", "core"]
    assert summary["targets"]["whole"]["mean"]["dice"] == pytest.approx(1.0)
    assert summary["foreground_mean"]["dice"] == pytest.approx(1.0)  # over the regions
    assert summary["settings"]["ignore_label"] == 3 and summary["settings"]["labels"] == []
    assert "foreground mean" in format_table(summary)


def test_an_msd_dataset_json_names_its_labels_too(tmp_path) -> None:
    """The MSD's ``labels`` map values to names (Task04: Anterior, Posterior)."""
    path = tmp_path / "dataset.json"
    labels = {"0": "background", "1": "Anterior", "2": "Posterior"}
    path.write_text(json.dumps({"modality": {"0": "MRI"}, "labels": labels}))
    targets = read_dataset_targets(path)
    assert targets.labels == [1, 2] and targets.regions == {}
    assert targets.names["1"] == "Anterior" and targets.names["2"] == "Posterior"
