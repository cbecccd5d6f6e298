"""The one-page summary of ``--show``: trials by state, best vs default with a paired bootstrap
CI over cases, importances (or why not), the Dice-vs-cost PNG and the plain sentence; and the
per-case Dice a trial stores for it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from autoseg.tuning.objective import SCORES_ATTR, case_dice
from autoseg.tuning.report import format_overview, show_study
from autoseg.tuning.study import DEFAULTS_ATTR
from autoseg.tuning.summary import measure_gain

CASES = [f"case_{i}" for i in range(8)]


def _scores(dice: float, spread: float) -> list[dict[str, Any]]:
    cases = {c: dice + spread * ((i % 3) - 1) for i, c in enumerate(CASES)}
    return [{"dataset": "A", "config": "unet3d", "fold": 0, "dice": dice, "cases": cases}]


def _objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", 0.0, 1.0)
    trial.suggest_categorical("k", ["a", "b"])
    dice = 0.7 + 0.2 * (1.0 - abs(x - 0.8))
    trial.set_user_attr(SCORES_ATTR, _scores(dice, 0.01))
    return dice


def _study(trials: int, *, defaults: dict[str, Any] | None = None) -> optuna.Study:
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(1))
    if defaults is not None:
        study.enqueue_trial(defaults, user_attrs={DEFAULTS_ATTR: True})
    study.optimize(_objective, n_trials=trials)
    return study


def test_the_summary_compares_the_best_with_the_defaults(tmp_path: Path) -> None:
    study = _study(6, defaults={"x": 0.1, "k": "a"})
    pruned = study.ask()
    pruned.report(0.5, 10)
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    overview = show_study(study, "sqlite:///x", tmp_path)
    gain = measure_gain(study)
    assert gain.default is not None and gain.default.number == 0
    assert gain.best is not None and gain.best.number == study.best_trial.number != 0
    assert gain.paired is not None and gain.paired.n_cases == len(CASES)
    expected = study.best_value - gain.default.value  # per-case offsets are the same
    assert gain.paired.mean_difference == pytest.approx(expected)
    assert gain.paired.ci_low <= expected <= gain.paired.ci_high
    assert gain.sentence.startswith(f"Tuning gained {expected:+.4f} mean foreground Dice")
    assert "is unlikely to be noise" in gain.sentence
    page = (tmp_path / "summary.md").read_text()
    assert "| COMPLETE | 6 |" in page and "| PRUNED | 1 |" in page
    assert "paired bootstrap 95% CI" in page and "Parameters the best trial changed" in page
    assert "## Parameter importances (fANOVA)" in page and "![Dice vs cost" in page
    assert (tmp_path / "summary.png").read_bytes()[:4] == b"\x89PNG"
    text = format_overview(overview)
    assert gain.sentence in text
    assert f"summary: {tmp_path / 'summary.md'}" in text
    assert f"summary plot: {tmp_path / 'summary.png'}" in text


def test_defaults_that_stay_best_are_said_plainly(tmp_path: Path) -> None:
    study = _study(1, defaults={"x": 0.8, "k": "a"})
    show_study(study, "sqlite:///x", tmp_path)
    page = (tmp_path / "summary.md").read_text()
    assert "Tuning has not gained anything" in page
    assert "Not available: needs >= 2 completed trials, the study has 1." in page


def test_a_study_without_completed_trials_or_defaults(tmp_path: Path) -> None:
    empty = optuna.create_study(direction="maximize")
    show_study(empty, "sqlite:///x", tmp_path / "empty")
    assert "No trial has completed yet" in (tmp_path / "empty" / "summary.md").read_text()
    assert (tmp_path / "empty" / "summary.png").is_file()
    gain = measure_gain(_study(2))  # no trial of the defaults
    assert gain.default is None and "cannot be measured" in gain.sentence


def test_case_dice_averages_the_foreground_labels_per_case() -> None:
    rows = [
        {"case": "a", "target": "0", "kind": "label", "dice": 0.99},
        {"case": "a", "target": "1", "kind": "label", "dice": 0.8},
        {"case": "a", "target": "2", "kind": "label", "dice": 0.6},
        {"case": "b", "target": "1", "kind": "label", "dice": float("nan")},
        {"case": "b", "target": "2", "kind": "label", "dice": 0.5},
        {"case": "c", "target": "1", "kind": "label", "dice": None},
        {"case": "a", "target": "r", "kind": "region", "dice": 0.1},
    ]
    assert case_dice({"metrics": rows}) == {"a": pytest.approx(0.7), "b": 0.5, "c": None}
    regions = [{"case": "a", "target": "r", "kind": "region", "dice": 0.4}]
    assert case_dice({"metrics": regions}) == {"a": 0.4}
    assert case_dice(None) == {}
