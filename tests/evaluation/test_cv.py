"""Cross-validation summaries over fabricated out-of-fold label maps with known overlaps.

References: a lesion shell (label 1, the 8³ cube [4:12]³ minus the core) around a 4³ core
(label 2, [6:10]³): |R1| = 448, |R2| = 64 voxels of 2 x 1 x 1 mm (0.002 ml). Case c05 has no
core (the whole cube is lesion), so a correct prediction leaves label 2 empty in both.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autoseg.data.geometry import Geometry
from autoseg.data.imageio import write_image
from autoseg.errors import ConfigError, InputError, PlansError
from autoseg.evaluation.cv import summarise_cv
from autoseg.evaluation.surfels import neighbourhood_codes, surfel_area_table
from autoseg.workspace import Workspace

SHAPE = (16, 16, 16)
GEOMETRY = Geometry(SHAPE, (2.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
CASES = [f"c{i:02d}" for i in range(6)]
VAL = [CASES[0:2], CASES[2:3], CASES[3:4], CASES[4:5], CASES[5:6]]
DIAGONAL_MM = math.sqrt(32**2 + 16**2 + 16**2)


def reference(case: str) -> np.ndarray:
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[4:12, 4:12, 4:12] = 1
    if case != "c05":
        labels[6:10, 6:10, 6:10] = 2
    return labels


def prediction(case: str) -> np.ndarray:
    """c01: core called lesion; c02: 8-voxel stray lesion blob; c03: 8 core voxels called
    lesion; the others exact."""
    labels = reference(case)
    if case == "c01":
        labels[labels == 2] = 1
    elif case == "c02":
        labels[0:2, 0:2, 0:2] = 1
    elif case == "c03":
        labels[6:8, 6:8, 6:8] = 1
    return labels


# Per case: (label 1 Dice, label 2 Dice); NaN: both masks empty.
EXPECTED_DICE = {
    "c00": (1.0, 1.0),
    "c01": (2 * 448 / (512 + 448), 0.0),
    "c02": (2 * 448 / (456 + 448), 1.0),
    "c03": (2 * 448 / (456 + 448), 2 * 56 / (56 + 64)),
    "c04": (1.0, 1.0),
    "c05": (1.0, math.nan),
}


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from autoseg.planner.workflow import run_plan

    root = tmp_path_factory.mktemp("cv")
    dataset = root / "dataset"
    (dataset / "imagesTr").mkdir(parents=True)
    (dataset / "labelsTr").mkdir()
    rng = np.random.default_rng(0)
    for case in CASES:
        image = (rng.normal(size=SHAPE) + 2.0 * reference(case)).astype(np.float32)
        write_image(dataset / "imagesTr" / f"{case}_0000.nii.gz", image, GEOMETRY)
        write_image(dataset / "labelsTr" / f"{case}.nii.gz", reference(case), GEOMETRY)
    labels = {"background": 0, "lesion": 1, "core": 2, "whole": [1, 2]}
    description = {"channel_names": {"0": "T1"}, "labels": labels, "numTraining": len(CASES)}
    (dataset / "dataset.json").write_text(json.dumps({**description, "file_ending": ".nii.gz"}))
    run_plan(dataset, Workspace(root / "work"))
    return root


@pytest.fixture
def ws(planned: Path, tmp_path: Path) -> Workspace:
    """The plan, a 5-fold split and unet3d's out-of-fold label maps of every fold."""
    work = Workspace(tmp_path / "work")
    work.root.mkdir()
    for name in ("source.json", "plans.json"):
        shutil.copy(planned / "work" / name, work.root / name)
    folds = [{"train": [c for c in CASES if c not in val], "val": val} for val in VAL]
    work.splits_json.write_text(json.dumps({"num_folds": 5, "seed": 0, "folds": folds}))
    write_predictions(work, "unet3d", prediction)
    return work


def surface_area_mm2(mask: np.ndarray) -> float:
    """Total surfel area of a mask (the NSD's surface) at the test geometry's spacing."""
    return float(surfel_area_table(GEOMETRY.spacing)[neighbourhood_codes(mask)].sum())


def write_predictions(
    ws: Workspace, config: str, predict: Callable[[str], np.ndarray], geometry: Geometry = GEOMETRY
) -> None:
    for fold, val in enumerate(VAL):
        for case in val:
            path = ws.fold_dir(config, fold) / "validation" / f"{case}.nii.gz"
            write_image(path, predict(case), geometry)


def test_known_overlaps_give_every_metric(ws: Workspace) -> None:
    summary = summarise_cv(ws, "unet3d")
    lesion = [d[0] for d in EXPECTED_DICE.values()]
    core = [d[1] for d in EXPECTED_DICE.values() if not math.isnan(d[1])]
    assert summary.per_class == pytest.approx({"1": np.mean(lesion), "2": np.mean(core)})
    assert summary.score == pytest.approx((np.mean(lesion) + np.mean(core)) / 2)
    assert summary.per_region["whole"] == pytest.approx((5 + 2 * 512 / (520 + 512)) / 6)
    assert (summary.folds, summary.num_cases, summary.reused) == ((0, 1, 2, 3, 4), 6, False)

    table = summary.table().set_index(["case", "target"])
    assert len(table) == 6 * 3  # cases x (2 labels + 1 region)
    assert table["fold"].to_dict()[("c03", "1")] == 2
    for case, (dice_1, dice_2) in EXPECTED_DICE.items():
        assert table.loc[(case, "1"), "dice"] == pytest.approx(dice_1)
        assert table.loc[(case, "2"), "dice"] == pytest.approx(dice_2, nan_ok=True)
    missed_core = table.loc[("c01", "2")]
    assert (missed_core["iou"], missed_core["nsd"]) == (0.0, 0.0)
    assert missed_core["hd95_mm"] == pytest.approx(DIAGONAL_MM)  # one mask empty: diagonal
    assert missed_core["volume_difference_ml"] == pytest.approx(-64 * 0.002)
    # Core called lesion: the 32 inner boundary voxels facing the core along Z lie 2 mm from
    # the cube's outer surface (8 % of 392 reference boundary voxels) -> HD95 2 mm. NSD at
    # 1 mm: the outer surfaces coincide, the reference's inner surface (the core's, >= 2 mm
    # from the outer one) is out of tolerance.
    outer, core = surface_area_mm2(reference("c05") > 0), surface_area_mm2(reference("c00") == 2)
    grown = table.loc[("c01", "1")]
    assert grown["iou"] == pytest.approx(448 / 512)
    assert grown["hd95_mm"] == pytest.approx(2.0)
    assert grown["nsd"] == pytest.approx(2 * outer / (2 * outer + core))
    # The blob is 8 of 400 predicted boundary voxels (< 5 %): HD95 0; NSD: only the blob's
    # surface is out of tolerance.
    blob = table.loc[("c02", "1")]
    assert (blob["iou"], blob["hd95_mm"]) == (pytest.approx(448 / 456), 0.0)
    shell = surface_area_mm2(reference("c00") == 1)
    blob_area = surface_area_mm2(prediction("c02") == 1) - shell
    assert blob["nsd"] == pytest.approx(2 * shell / (2 * shell + blob_area))
    assert blob["volume_difference_ml"] == pytest.approx(8 * 0.002)
    assert table.loc[("c00", "1"), ["dice", "iou", "hd95_mm", "nsd"]].tolist() == [1, 1, 0, 1]

    data = json.loads(summary.json_path.read_text())
    assert data["summary"]["targets"]["2"]["num_both_empty"] == 1
    assert data["summary"]["targets"]["2"]["num_missed"] == 1
    assert data["config"] == "unet3d" and data["labels"] == [1, 2]
    assert set(data["inputs"]) == {"splits", "targets", "predictions", "references"}
    assert len(data["per_case"]) == 18
    on_disk = pd.read_csv(summary.csv_path)
    assert list(on_disk.columns[:5]) == ["case", "fold", "target", "name", "kind"]
    names = dict(zip(on_disk["target"].astype(str), on_disk["name"]))
    assert names == {"1": "lesion", "2": "core", "whole": "whole"}  # dataset.json's names
    assert data["summary"]["targets"]["1"]["name"] == "lesion"


@pytest.mark.parametrize(
    ("metric", "column"), [("iou", "iou"), ("hd95", "hd95_mm"), ("nsd", "nsd")]
)
def test_metric_selects_the_score(ws: Workspace, metric: str, column: str) -> None:
    summary = summarise_cv(ws, "unet3d", metric)
    table = summary.table()
    labels = table[table["kind"] == "label"]
    per_class = labels.groupby("target")[column].mean()  # pandas skips NaN like summarize
    assert summary.metric == column
    assert summary.per_class == pytest.approx({"1": per_class["1"], "2": per_class["2"]})
    assert summary.score == pytest.approx(per_class.mean())


def test_skips_when_current_and_redoes_on_change(ws: Workspace) -> None:
    first = summarise_cv(ws, "unet3d")
    stamp = first.json_path.stat().st_mtime_ns
    again = summarise_cv(ws, "unet3d", "dice")
    assert again.reused and again.score == first.score
    assert first.json_path.stat().st_mtime_ns == stamp
    write_predictions(ws, "unet3d", reference)  # every prediction now exact
    redone = summarise_cv(ws, "unet3d")
    assert not redone.reused
    assert redone.score == 1.0


def test_missing_folds_and_cases_are_named(ws: Workspace) -> None:
    (ws.fold_dir("unet3d", 0) / "validation" / "c01.nii.gz").unlink()
    shutil.rmtree(ws.fold_dir("unet3d", 4))
    with pytest.raises(InputError) as info:
        summarise_cv(ws, "unet3d")
    message = str(info.value)
    assert "fold 0: 1 file(s) missing: c01.nii.gz" in message
    assert "fold 4: no validation outputs" in message
    assert "autoseg train" in message and "--config unet3d fold=0,4'" in message


def test_bad_inputs_raise_clear_errors(ws: Workspace) -> None:
    with pytest.raises(PlansError, match="'unet3d_lowres' was not planned for this dataset"):
        summarise_cv(ws, "unet3d_lowres")
    with pytest.raises(ConfigError, match="did you mean 'dice'"):
        summarise_cv(ws, "unet3d", "dic")
    shifted = Geometry(SHAPE, (2.0, 1.0, 1.0), (0.0, 0.0, 5.0), GEOMETRY.direction)
    write_predictions(ws, "deepmedic", reference, shifted)
    with pytest.raises(InputError, match=r"c00.*does not match the reference.*origin"):
        summarise_cv(ws, "deepmedic")
    folds = [{"train": [], "val": CASES[:3]}, {"train": [], "val": CASES[2:]}]
    ws.splits_json.write_text(json.dumps({"num_folds": 2, "folds": folds}))
    with pytest.raises(InputError, match=r"c02.*validates in folds 0 and 1"):
        summarise_cv(ws, "unet3d")
    ws.splits_json.unlink()
    with pytest.raises(InputError, match=r"splits\.json missing"):
        summarise_cv(ws, "unet3d")
