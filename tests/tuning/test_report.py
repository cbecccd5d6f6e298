"""``--show``: best trial, importances (or why not), best_heuristics.json, trials.csv, plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import optuna
import pytest

from autoseg.planner.heuristics import PlannerHeuristics, load_heuristics
from autoseg.planner.search_space import suggest_heuristics
from autoseg.tuning.objective import HEURISTICS_ATTR, SCORES_ATTR
from autoseg.tuning.report import format_overview, show_study
from autoseg.tuning.worker import REASON_ATTR


def _objective(trial: optuna.Trial) -> float:
    heuristics = suggest_heuristics(trial, on_cpu=True)
    trial.set_user_attr(HEURISTICS_ATTR, heuristics.to_dict())
    score = 1.0 - abs(heuristics.spacing_percentile - 40.0) / 100
    trial.set_user_attr(SCORES_ATTR, [{"dataset": "A", "config": "unet3d", "fold": 0,
                                        "dice": score, "epochs": 1}])  # fmt: skip
    return score


def _study(trials: int) -> optuna.Study:
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    study.optimize(_objective, n_trials=trials)
    return study


def test_show_exports_the_best_heuristics_and_plots(tmp_path: Path) -> None:
    study = _study(5)
    pruned = study.ask()
    pruned.set_user_attr(REASON_ATTR, "planning A failed: nothing fits")
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    overview = show_study(study, "sqlite:///x", tmp_path / "out")
    best = study.best_trial
    assert overview.best is not None and overview.best["number"] == best.number
    assert overview.counts == {"COMPLETE": 5, "PRUNED": 1}
    assert overview.importances is not None
    assert sum(overview.importances.values()) == pytest.approx(1.0)
    assert overview.failures == [(5, "PRUNED", "planning A failed: nothing fits")]
    exported = json.loads((tmp_path / "out" / "best_heuristics.json").read_text())
    assert exported["trial"] == best.number and exported["value"] == pytest.approx(best.value)
    loaded = load_heuristics(tmp_path / "out" / "best_heuristics.json")
    assert loaded == PlannerHeuristics.from_dict(best.user_attrs[HEURISTICS_ATTR])
    for name in ("optimization_history.png", "param_importances.png"):
        assert (tmp_path / "out" / name).read_bytes()[:4] == b"\x89PNG"
    with open(tmp_path / "out" / "trials.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 and rows[5]["reason"] == "planning A failed: nothing fits"
    text = format_overview(overview)
    assert f"best trial: #{best.number}" in text and "parameter importances (fANOVA)" in text
    assert "autoseg plan DATASET --heuristics" in text


def test_show_with_one_completed_trial_explains_missing_importances(tmp_path: Path) -> None:
    overview = show_study(_study(1), "sqlite:///x", tmp_path)
    assert overview.importances is None
    assert overview.importance_note == "needs >= 2 completed trials, the study has 1"
    assert "param_importances.png" not in {p.name for p in overview.files.values()}
    assert (tmp_path / "best_heuristics.json").is_file()


def test_show_without_completed_trials_writes_no_heuristics(tmp_path: Path) -> None:
    study = optuna.create_study(direction="maximize")
    overview = show_study(study, "sqlite:///x", tmp_path)
    assert overview.best is None and not (tmp_path / "best_heuristics.json").exists()
    assert "no completed trial yet" in format_overview(overview)
