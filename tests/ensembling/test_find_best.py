"""find-best on a fabricated workspace whose out-of-fold predictions have known overlaps.

Every case has the same reference: a lesion (label 1) shell, the 8³ cube [4:12]³ around a
4³ core (label 2) [6:10]³, so |R1| = 448 and |R2| = 64 voxels. Predictions are the reference
with small, known edits; softmax maps are one-hot with a per-voxel confidence, so the
ensemble's argmax is known too.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from autoseg.cli import main
from autoseg.data.geometry import Geometry
from autoseg.data.imageio import write_image
from autoseg.ensembling import (
    BestChoice,
    bootstrap_score_ci,
    find_best,
    format_best_choice,
    load_best_choice,
    paired_bootstrap,
)
from autoseg.errors import ConfigError, InputError, PlansError
from autoseg.workspace import Workspace

SHAPE = (16, 16, 16)
GEOMETRY = Geometry(SHAPE, (2.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
CASES = [f"c{i:02d}" for i in range(6)]
VAL = [CASES[0:2], CASES[2:3], CASES[3:4], CASES[4:5], CASES[5:6]]
BLOB = (slice(0, 2), slice(0, 2), slice(0, 2))  # 8 voxels of background, far from the lesion
CORE_PART = (slice(6, 8), slice(6, 8), slice(6, 8))  # 8 of the 64 core voxels
DICE_BLOB = 2 * 448 / (448 + 456)  # label 1 with an 8-voxel stray blob
DICE_CORE = 2 * 56 / (56 + 64)  # label 2 with 8 core voxels called lesion
DICE_SHELL_SWAP = 2 * 448 / (456 + 448)  # label 1 when those 8 core voxels are called lesion

Predictor = Callable[[str, np.ndarray], tuple[np.ndarray, np.ndarray]]


def reference() -> np.ndarray:
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[4:12, 4:12, 4:12] = 1
    labels[6:10, 6:10, 6:10] = 2
    return labels


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A planned workspace (source.json + plans.json) of a 6-case dataset of known labels."""
    from autoseg.planner.workflow import run_plan

    root = tmp_path_factory.mktemp("findbest")
    dataset = root / "dataset"
    (dataset / "imagesTr").mkdir(parents=True)
    (dataset / "labelsTr").mkdir()
    rng = np.random.default_rng(0)
    for case in CASES:
        image = (rng.normal(size=SHAPE) + 2.0 * reference()).astype(np.float32)
        write_image(dataset / "imagesTr" / f"{case}_0000.nii.gz", image, GEOMETRY)
        write_image(dataset / "labelsTr" / f"{case}.nii.gz", reference(), GEOMETRY)
    labels = {"background": 0, "lesion": 1, "core": 2, "whole": [1, 2]}
    description = {"channel_names": {"0": "T1"}, "labels": labels, "numTraining": len(CASES)}
    (dataset / "dataset.json").write_text(json.dumps({**description, "file_ending": ".nii.gz"}))
    run_plan(dataset, Workspace(root / "work"))
    return root


@pytest.fixture
def ws(planned: Path, tmp_path: Path) -> Workspace:
    """A fresh workspace with the plan and a 5-fold split, no results yet."""
    work = Workspace(tmp_path / "work")
    work.root.mkdir()
    for name in ("source.json", "plans.json"):
        shutil.copy(planned / "work" / name, work.root / name)
    folds = [{"train": [c for c in CASES if c not in val], "val": val} for val in VAL]
    work.splits_json.write_text(json.dumps({"num_folds": 5, "seed": 0, "folds": folds}))
    return work


def write_config(ws: Workspace, config: str, predict: Predictor, *, npz: bool = True) -> None:
    """Write every fold's validation outputs: label map + float16 softmax (K = 3)."""
    source = Path(json.loads(ws.source_json.read_text())["dataset"])
    for fold, val in enumerate(VAL):
        folder = ws.fold_dir(config, fold) / "validation"
        folder.mkdir(parents=True)
        for case in val:
            labels, confidence = predict(case, reference())
            first_channel = source / "imagesTr" / f"{case}_0000.nii.gz"
            write_image(folder / f"{case}.nii.gz", labels, GEOMETRY, reference=first_channel)
            if npz:
                one_hot = np.arange(3)[:, None, None, None] == labels[None]
                probabilities = np.where(one_hot, confidence, (1.0 - confidence) / 2.0)
                np.savez_compressed(
                    folder / f"{case}.npz", probabilities=probabilities.astype(np.float16)
                )


def with_blob(case: str, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference + an unsure 8-voxel lesion blob in the corner."""
    confidence = np.full(SHAPE, 0.9)
    labels[BLOB], confidence[BLOB] = 1, 0.5
    return labels, confidence


def with_core_error(case: str, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference with 8 core voxels unsurely called lesion."""
    confidence = np.full(SHAPE, 0.9)
    labels[CORE_PART], confidence[CORE_PART] = 1, 0.5
    return labels, confidence


def with_split_lesion(case: str, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The lesion shell cut in two by a missed plane (z = 8): largest-component removal hurts."""
    labels[8][labels[8] == 1] = 0
    return labels, np.full(SHAPE, 0.9)


# ----------------------------------------------------------------------------- bootstrap


def test_paired_bootstrap_matches_a_plain_loop() -> None:
    a = np.array([0.9, 0.8, np.nan, 0.7, 0.95, 0.6])
    b = np.array([0.85, 0.82, 0.5, 0.6, 0.9, np.nan])
    result = paired_bootstrap(a, b, num_bootstrap=500, seed=3)
    diff = np.array([0.05, -0.02, 0.1, 0.05])
    rng = np.random.default_rng(3)
    means = [diff[rng.integers(0, 4, size=4)].mean() for _ in range(500)]
    assert result.n_cases == 4
    assert result.mean_difference == pytest.approx(0.045)
    assert result.ci_low == pytest.approx(np.percentile(means, 2.5))
    assert result.ci_high == pytest.approx(np.percentile(means, 97.5))
    assert paired_bootstrap(a, b, num_bootstrap=500, seed=3) == result


def test_paired_bootstrap_zero_in_ci_only_for_noise() -> None:
    constant = paired_bootstrap(np.full(8, 0.9), np.full(8, 0.8), num_bootstrap=200)
    assert (constant.ci_low, constant.ci_high) == pytest.approx((0.1, 0.1))
    assert not constant.ci_includes_zero
    noise = paired_bootstrap(np.array([0.9, 0.7] * 5), np.array([0.7, 0.9] * 5))
    assert noise.mean_difference == pytest.approx(0.0)
    assert noise.ci_includes_zero
    with pytest.raises(ValueError, match="1D arrays"):
        paired_bootstrap(np.zeros(3), np.zeros(4))


def test_bootstrap_score_ci_resamples_whole_cases() -> None:
    scores = np.array([[1.0, np.nan], [0.5, 0.5], [0.0, 1.0]])
    low, high = bootstrap_score_ci(scores, num_bootstrap=1000, seed=1)
    assert 0.0 <= low < high <= 1.0
    assert bootstrap_score_ci(np.ones((4, 2)), num_bootstrap=10) == (1.0, 1.0)
    assert all(math.isnan(v) for v in bootstrap_score_ci(np.zeros((0, 2))))


# ----------------------------------------------------------------------------- find_best


def test_ensemble_of_two_wins_with_known_scores(ws: Workspace) -> None:
    write_config(ws, "unet3d", with_blob)
    write_config(ws, "deepmedic", with_core_error)
    choice = find_best(ws, num_bootstrap=300)

    names = [c.name for c in choice.candidates]
    assert names == ["unet3d+deepmedic", "unet3d", "deepmedic"]
    ensemble, unet, deepmedic = choice.candidates
    # Ensemble: the unsure errors of each member are outvoted by the other -> the reference.
    assert ensemble.score == pytest.approx(1.0)
    assert dict(ensemble.per_class) == pytest.approx({"1": 1.0, "2": 1.0})
    assert unet.per_class["1"] == pytest.approx(DICE_BLOB)
    assert unet.score == pytest.approx((DICE_BLOB + 1.0) / 2)
    assert unet.per_region["whole"] == pytest.approx(2 * 512 / (520 + 512))
    assert deepmedic.per_class == pytest.approx({"1": DICE_SHELL_SWAP, "2": DICE_CORE})
    assert all(c.num_cases == 6 for c in choice.candidates)
    assert choice.configs == ("unet3d", "deepmedic")
    assert choice.folds == (0, 1, 2, 3, 4)
    assert dict(choice.postprocessing) == {1: False, 2: False}
    assert choice.score_postprocessed == pytest.approx(1.0)

    comparison = choice.comparison
    assert comparison is not None
    assert comparison.runner_up == ("unet3d",)
    gap = 1.0 - (DICE_BLOB + 1.0) / 2  # the same gap in every case: a degenerate interval
    assert comparison.mean_difference == pytest.approx(gap)
    assert comparison.ci95 == pytest.approx((gap, gap))
    assert not comparison.ci_includes_zero
    assert comparison.n_cases == 6

    saved = json.loads(ws.best_json.read_text())
    assert saved["configs"] == ["unet3d", "deepmedic"]
    assert saved["postprocessing"] == {"1": False, "2": False}
    assert saved["metric"] == "dice"
    assert saved["predict_command"] == (
        f"autoseg predict -i INPUT -o OUTPUT --work {ws.root.resolve()} --config best"
    )
    assert load_best_choice(ws.best_json) == choice
    assert (ws.results_dir / "cv_comparison.png").read_bytes()[:4] == b"\x89PNG"
    assert (ws.config_dir("deepmedic") / "cv_summary.csv").is_file()
    _check_comparison_picture(ws.results_dir / "cv_comparison.png", choice)


def _check_comparison_picture(path: Path, choice: BestChoice) -> None:
    import matplotlib.image
    from matplotlib.colors import to_rgb

    from autoseg.ensembling.plot import CHOSEN_COLOUR, OTHER_COLOUR, comparison_figure

    figure = comparison_figure(choice, {1: "lesion", 2: "core"})
    overview, per_label = figure.axes
    legend = [t.get_text() for t in overview.get_legend().get_texts()]
    assert legend == ["chosen: unet3d+deepmedic", "other candidates"]
    ticks = [t.get_text() for t in per_label.get_xticklabels()]
    assert ticks == ["lesion (1)", "core (2)", "whole (region)"]
    names = [t.get_text() for t in per_label.get_legend().get_texts()]
    assert names[0] == "unet3d+deepmedic (chosen)" and len(names) == len(choice.candidates)
    heights = [round(bar.get_height(), 6) for bar in per_label.patches[:3]]
    assert heights == [round(choice.candidates[0].per_class["1"], 6), 1.0, 1.0]
    pixels = np.asarray(matplotlib.image.imread(str(path)))[..., :3]
    assert pixels.shape[0] == 480 and pixels.shape[1] >= 900
    for colour in (CHOSEN_COLOUR, OTHER_COLOUR):
        rgb = np.asarray(to_rgb(colour))
        assert (np.abs(pixels - rgb).max(axis=-1) < 0.02).sum() > 200, colour


def test_postprocessing_kept_when_it_helps(ws: Workspace) -> None:
    write_config(ws, "unet3d", with_blob, npz=False)  # one config: no probabilities needed
    choice = find_best(ws, ["unet3d"], num_bootstrap=50)

    assert choice.configs == ("unet3d",)
    assert [c.name for c in choice.candidates] == ["unet3d"]
    assert choice.comparison is None
    assert dict(choice.postprocessing) == {1: True, 2: False}
    lesion, core = choice.postprocessing_decisions
    assert (lesion.before, lesion.after, lesion.num_changed) == (pytest.approx(DICE_BLOB), 1.0, 6)
    assert (core.before, core.after, core.num_changed) == (1.0, 1.0, 0)
    assert choice.score == pytest.approx((DICE_BLOB + 1.0) / 2)
    assert choice.score_postprocessed == pytest.approx(1.0)
    assert "no comparison" in format_best_choice(choice)


def test_postprocessing_dropped_when_it_hurts(ws: Workspace) -> None:
    write_config(ws, "deepmedic", with_split_lesion, npz=False)
    choice = find_best(ws, num_bootstrap=50)

    assert choice.configs == ("deepmedic",)
    lesion = choice.postprocessing_decisions[0]
    kept = 64 + 64 + 48 + 48  # z 4..7, the larger half; z 9..11 (176 voxels) is removed
    assert lesion.before == pytest.approx(2 * 400 / (400 + 448))
    assert lesion.after == pytest.approx(2 * kept / (kept + 448))
    assert dict(choice.postprocessing) == {1: False, 2: False}
    assert choice.score_postprocessed == pytest.approx(choice.score)


def test_hd95_ranks_lower_first(ws: Workspace) -> None:
    write_config(ws, "unet3d", with_blob)
    write_config(ws, "deepmedic", with_core_error)
    choice = find_best(ws, metric="hd95", num_bootstrap=50)

    assert choice.metric == "hd95"
    scores = [c.score for c in choice.candidates]
    assert scores == sorted(scores)
    # The 8 stray voxels are under 5 % of unet3d's surface: its HD95 is 0, as the ensemble's.
    # On a tie the candidate with fewer configurations (cheaper to run) ranks first.
    assert [(c.name, c.score) for c in choice.candidates[:2]] == [
        ("unet3d", 0.0),
        ("unet3d+deepmedic", 0.0),
    ]
    assert choice.candidates[2].score > 0.0
    assert choice.comparison is not None and not choice.comparison.higher_is_better
    assert choice.comparison.mean_difference == 0.0
    assert choice.comparison.ci_includes_zero


def test_best_json_reused_until_inputs_change(ws: Workspace) -> None:
    write_config(ws, "unet3d", with_blob)
    write_config(ws, "deepmedic", with_core_error)
    first = find_best(ws, num_bootstrap=50)
    stamp = ws.best_json.stat().st_mtime_ns
    assert find_best(ws, num_bootstrap=50) == first
    assert ws.best_json.stat().st_mtime_ns == stamp
    again = find_best(ws, num_bootstrap=50, seed=1)
    assert ws.best_json.stat().st_mtime_ns != stamp
    assert again.comparison is not None and again.comparison.seed == 1


def test_errors_name_what_is_missing(ws: Workspace) -> None:
    with pytest.raises(InputError, match="no trained configuration"):
        find_best(ws)
    write_config(ws, "unet3d", with_blob)
    write_config(ws, "deepmedic", with_core_error, npz=False)
    needs_npz = r"'deepmedic'.*c00\.npz.*probabilities are needed.*fold=0\.\.4'"
    with pytest.raises(InputError, match=needs_npz):
        find_best(ws)
    with pytest.raises(ConfigError, match="did you mean 'unet3d'"):
        find_best(ws, ["unet3"])
    with pytest.raises(ConfigError, match="did you mean 'nsd'"):
        find_best(ws, metric="nds")
    shutil.rmtree(ws.fold_dir("unet3d", 3))
    with pytest.raises(InputError, match=r"fold 3: no validation outputs.*fold=3'"):
        find_best(ws, ["unet3d"])


def test_best_choice_json_is_strict(ws: Workspace) -> None:
    write_config(ws, "unet3d", with_blob, npz=False)
    choice = find_best(ws, num_bootstrap=20)
    data = choice.to_dict()
    assert BestChoice.from_dict(json.loads(json.dumps(data))) == choice
    with pytest.raises(PlansError, match=r"unknown keys \['extra'\].*expected keys"):
        BestChoice.from_dict({**data, "extra": 1})
    with pytest.raises(PlansError, match=r"missing keys \['folds'\]"):
        BestChoice.from_dict({k: v for k, v in data.items() if k != "folds"})
    with pytest.raises(PlansError, match="schema_version"):
        BestChoice.from_dict({**data, "schema_version": 99})
    with pytest.raises(PlansError, match="find-best"):
        load_best_choice(ws.root / "missing.json")


def test_cli_prints_table_decisions_comparison_and_command(
    ws: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(ws, "unet3d", with_blob)
    write_config(ws, "deepmedic", with_core_error)
    assert main(["find-best", "--work", str(ws.root), "--bootstrap", "100", "-np", "1"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    ranked = [line.split()[1] for line in lines if line[:5].strip() in {"1", "2", "3"}]
    assert ranked == ["unet3d+deepmedic", "unet3d", "deepmedic"]
    assert "lesion (1): 1.0000 -> 1.0000  not applied" in out  # dataset.json's names
    header = next(line for line in lines if line.startswith("rank"))
    assert "lesion (1)" in header and "core (2)" in header and header.endswith("whole")
    assert "the CI excludes 0" in out
    assert lines[-1].strip() == (
        f"autoseg predict -i INPUT -o OUTPUT --work {ws.root.resolve()} --config best"
    )


def test_cli_errors_are_one_line_exit_2(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["find-best", "--work", str(ws.root)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("autoseg: error:") and "no trained configuration" in err
    assert len(err.splitlines()) == 1
    assert main(["find-best", "--work", str(ws.root), "--metric", "hd"]) == 2
    assert "invalid choice" in capsys.readouterr().err
