"""``autoseg demo --quick`` end to end through ``cli.main``: generate, plan, train every
configuration on the folds, find-best, predict and evaluate the held-out cases, overlay.

The one slow test of the suite (about 2 minutes on a 2-core CPU): it checks the printed
held-out Dice of every foreground class (>= 0.7), the files the report lists, the overlay
picture, and that a re-run skips every step's work.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from autoseg.cli import main

pytestmark = pytest.mark.e2e
CLASSES = ("lesion", "core", "satellite")
_ROW = re.compile(r"^\s+(\w+)\s+(\d+)\s+([0-9.]+|-)\s+([0-9.]+|-)\s*$")


def _dice_rows(report: str) -> dict[str, float]:
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Held-out Dice"))
    rows = {}
    for line in lines[start + 2 :]:
        match = _ROW.match(line)
        if match is None:
            break
        rows[match.group(1)] = float("nan") if match.group(3) == "-" else float(match.group(3))
    return rows


def _written(report: str) -> dict[str, Path]:
    lines = report.splitlines()
    start = lines.index("Written:")
    items = {}
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        what, path = re.split(r"\s{2,}", line.strip(), maxsplit=1)
        items[what] = Path(path)
    return items


def _check_overlay(path: Path) -> None:
    import matplotlib.image
    from matplotlib.colors import to_rgb

    from autoseg.viz.palette import OKABE_ITO

    pixels = np.asarray(matplotlib.image.imread(str(path)))[..., :3]
    assert pixels.shape[0] >= 300 and pixels.shape[1] >= 800
    assert float(pixels.std()) > 0.05
    colours = {tuple(p) for p in np.round(pixels[::2, ::2].reshape(-1, 3), 1)}
    assert len(colours) > 10
    # The label colours (Okabe-Ito: orange for lesion, sky blue for core): prediction
    # outlines and legend swatches in the exact colour, reference fills tinted by it.
    for colour in OKABE_ITO[:2]:
        exact = (np.abs(pixels - np.asarray(to_rgb(colour))).max(axis=-1) < 0.03).sum()
        assert exact > 20, colour


def test_demo_quick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "work"
    assert main(["demo", "--quick", "--work", str(work)]) == 0
    report = capsys.readouterr().out

    dice = _dice_rows(report)
    assert set(dice) == set(CLASSES), report
    for name in CLASSES:
        assert dice[name] >= 0.7, f"held-out Dice of {name} is {dice[name]}\n{report}"
    summary = json.loads((work / "demo_evaluation" / "summary.json").read_text())
    for value, name in enumerate(CLASSES, start=1):
        assert summary["targets"][str(value)]["mean"]["dice"] == pytest.approx(dice[name], abs=1e-4)

    written = _written(report)
    for what in ("plans", "splits", "best choice", "cross-validation chart", "metrics", "overlay"):
        assert what in written, report
    for what, path in written.items():
        assert path.exists(), f"{what}: {path} is listed but missing"
    progress = [what for what in written if what.startswith("progress ")]
    best = json.loads((work / "best.json").read_text())
    splits = json.loads((work / "splits.json").read_text())
    planned = json.loads((work / "plans.json").read_text())["configurations"]
    assert set(planned) == {"unet3d", "unet2d", "deepmedic"}  # every planned one is trained
    assert len(progress) == len(best["folds"]) * 3 == splits["num_folds"] * 3
    assert len(list((work / "demo_predictions").glob("*.nii.gz"))) == 2
    _check_overlay(written["overlay"])

    assert main(["demo", "--quick", "--work", str(work)]) == 0  # a re-run skips the work
    again = capsys.readouterr().out
    assert _dice_rows(again) == dice
    assert "trained" not in _training_lines(again) and "skipped" in _training_lines(again)


def _training_lines(report: str) -> str:
    lines = report.splitlines()
    start = lines.index("Training (validation Dice of each fold):")
    rows = []
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        rows.append(line)
    return "\n".join(rows)
