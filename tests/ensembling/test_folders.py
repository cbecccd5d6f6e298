"""``autoseg ensemble`` and ``autoseg apply-postprocessing`` on folders of known predictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from autoseg.cli import main
from autoseg.data.geometry import Geometry
from autoseg.data.imageio import read_image, write_image
from autoseg.ensembling.folders import (
    apply_postprocessing_to_folder,
    ensemble_folders,
    load_postprocessing_rule,
)
from autoseg.errors import InputError

SHAPE = (6, 8, 10)
GEOMETRY = Geometry(SHAPE, (3.0, 0.8, 0.7), (1.0, -2.0, 5.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))


def _softmax(rng: np.random.Generator) -> np.ndarray:
    logits = rng.normal(size=(3, *SHAPE))
    e = np.exp(logits)
    return (e / e.sum(0)).astype(np.float16)


def _folder(root: Path, name: str, cases: dict[str, np.ndarray]) -> Path:
    folder = root / name
    folder.mkdir()
    for case, probabilities in cases.items():
        np.savez_compressed(folder / f"{case}.npz", probabilities=probabilities)
        labels = probabilities.astype(np.float32).argmax(0).astype(np.uint8)
        write_image(folder / f"{case}.nii.gz", labels, GEOMETRY)
    return folder


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    a = {c: _softmax(rng) for c in ("c1", "c2", "c3")}
    b = {c: _softmax(rng) for c in ("c1", "c2", "c3")}
    mean = {c: (a[c].astype(np.float32) + b[c].astype(np.float32)) / 2 for c in a}
    return _folder(tmp_path, "a", a), _folder(tmp_path, "b", b), mean


def test_ensemble_is_the_argmax_of_the_mean(folders, tmp_path: Path, capsys) -> None:
    a, b, mean = folders
    out = tmp_path / "out"
    argv = ["ensemble", "-i", str(a), str(b), "-o", str(out), "--save-probabilities", "-np", "1"]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == f"ensembled 3 case(s) -> {out}"
    for case, expected in mean.items():
        labels, geometry = read_image(out / f"{case}.nii.gz")
        assert geometry == read_image(a / f"{case}.nii.gz")[1]  # the header is copied
        np.testing.assert_array_equal(labels, expected.argmax(0))
        with np.load(out / f"{case}.npz") as npz:
            np.testing.assert_allclose(npz["probabilities"], expected, atol=1e-3)
    assert main(argv) == 0  # nothing to redo
    assert "skipped 3 with existing output" in capsys.readouterr().out


def test_region_sigmoids_are_averaged_thresholded_and_painted(folders, tmp_path: Path) -> None:
    """With a region-based dataset.json the .npz hold region sigmoids (not a softmax)."""
    a, b, mean = folders  # any three channels in [0, 1] will do as region sigmoids
    dataset = tmp_path / "dataset.json"
    labels = {"background": 0, "whole": [1, 2, 3], "core": [2, 3], "enhancing": 3}
    dataset.write_text(json.dumps({"labels": labels, "regions_class_order": [1, 2, 3]}))
    out = tmp_path / "regions"
    argv = ["ensemble", "-i", str(a), str(b), "-o", str(out), "--dataset-json", str(dataset)]
    assert main([*argv, "-np", "1"]) == 0
    for case, expected in mean.items():
        painted = np.zeros(SHAPE, dtype=np.uint8)
        for value, channel in zip((1, 2, 3), expected):
            painted[channel > 0.5] = value
        np.testing.assert_array_equal(read_image(out / f"{case}.nii.gz")[0], painted)


def test_ensemble_applies_a_postprocessing_rule(folders, tmp_path: Path) -> None:
    a, b, mean = folders
    report = ensemble_folders([a, b], tmp_path / "pp", postprocessing={1: True})
    assert report.exit_code == 0
    from scipy import ndimage

    labels, _ = read_image(tmp_path / "pp" / "c1.nii.gz")
    _, count = ndimage.label(labels == 1, structure=np.ones((3, 3, 3)))
    assert count == 1 and (labels == 2).sum() == (mean["c1"].argmax(0) == 2).sum()


def test_ensemble_errors(folders, tmp_path: Path, capsys) -> None:
    a, b, _ = folders
    with pytest.raises(InputError, match="at least two"):
        ensemble_folders([a], tmp_path / "x")
    (b / "c3.npz").unlink()
    with pytest.raises(InputError, match=r"do not hold the same cases \(1 differ, e.g. c3\)"):
        ensemble_folders([a, b], tmp_path / "x")
    (a / "c3.npz").unlink()
    (a / "c2.nii.gz").unlink()
    (b / "c2.nii.gz").unlink()
    assert main(["ensemble", "-i", str(a), str(b), "-o", str(tmp_path / "y")]) == 2
    captured = capsys.readouterr()
    assert "1 FAILED (c2)" in captured.out and "no label map c2{ending}" in captured.err
    assert (tmp_path / "y" / "c1.nii.gz").is_file()  # the others still run
    assert main(["ensemble", "-i", str(a), str(tmp_path / "nope"), "-o", str(tmp_path)]) == 2
    assert "input folder not found" in capsys.readouterr().err


def test_apply_postprocessing_from_best_json_or_a_rule(tmp_path: Path, capsys) -> None:
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[0:2, 0:2, 0:2] = 1
    labels[4:6, 5:8, 6:9] = 1  # the larger component of label 1
    labels[3, 0, 0] = 2
    labels[5, 0, 9] = 2
    source = tmp_path / "pred"
    source.mkdir()
    write_image(source / "c1.nii.gz", labels, GEOMETRY)
    work = tmp_path / "work"
    work.mkdir()
    (work / "best.json").write_text(json.dumps({"postprocessing": {"1": True, "2": False}}))
    out = tmp_path / "out"
    assert (
        main(["apply-postprocessing", "-i", str(source), "-o", str(out), "--work", str(work)]) == 0
    )
    assert capsys.readouterr().out.strip() == f"postprocessed 1 case(s) -> {out}"
    result, geometry = read_image(out / "c1.nii.gz")
    assert geometry == read_image(source / "c1.nii.gz")[1]
    assert (result == 1).sum() == 18 and (result == 2).sum() == 2  # label 2 untouched
    rule = tmp_path / "rule.json"
    rule.write_text('{"2": true}')
    assert load_postprocessing_rule(rule) == {2: True}
    report = apply_postprocessing_to_folder(source, tmp_path / "out2", {2: True})
    assert report.written == ("c1",)
    assert (read_image(tmp_path / "out2" / "c1.nii.gz")[0] == 2).sum() == 1  # a tie: first kept


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "run 'autoseg find-best' first"), ("[1]", "label -> true/false"),
     ('{"0": true}', "label -> true/false"), ("{", "cannot read")],
)  # fmt: skip
def test_bad_rules_are_one_line(tmp_path: Path, capsys, content, message) -> None:
    rule = tmp_path / ("best.json" if content is None else "rule.json")
    if content is not None:
        rule.write_text(content)
    (tmp_path / "pred").mkdir()
    argv = ["apply-postprocessing", "-i", str(tmp_path / "pred"), "-o", str(tmp_path / "o")]
    assert main([*argv, "--postprocessing", str(rule)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and str(rule) in err
