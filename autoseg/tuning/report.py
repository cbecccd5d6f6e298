"""``autoseg tune --show``: the best trial, parameter importances, best_heuristics.json, plots.

Files written (atomically) into the study folder ``<work>/tuning/studies/<study>/``:
``summary.md`` and ``summary.png`` (the one-page summary, :mod:`autoseg.tuning.summary`),
``best_heuristics.json`` (accepted by ``autoseg plan --heuristics``), ``trials.csv``,
``optimization_history.png`` and, with >= 2 completed trials, ``param_importances.png``.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.importance import FanovaImportanceEvaluator

from autoseg import __version__
from autoseg.atomic import atomic_path, atomic_write_json
from autoseg.log import get_logger
from autoseg.tuning.objective import HEURISTICS_ATTR, SCORES_ATTR
from autoseg.tuning.study import SETTINGS_ATTR
from autoseg.tuning.summary import write_summary
from autoseg.tuning.worker import REASON_ATTR

__all__ = ["BEST_HEURISTICS_SCHEMA_VERSION", "StudyOverview", "format_overview", "show_study"]

BEST_HEURISTICS_SCHEMA_VERSION = 1
_OBJECTIVE = "mean validation foreground Dice over datasets x configurations x folds"
_log = get_logger(__name__)


@dataclass(frozen=True)
class StudyOverview:
    """What ``--show`` found and wrote.

    Attributes:
        study_name: The study.
        storage: Its storage URL (password masked).
        counts: Number of trials per state name (COMPLETE, PRUNED, FAIL, RUNNING, WAITING).
        best: Number, value, params, heuristics and per-unit scores of the best trial
            (None before the first completed trial).
        importances: Parameter -> importance (fANOVA, sums to 1), or None.
        importance_note: Why there are no importances, if there are none.
        failures: (trial number, state, reason) of pruned or failed trials with a reason.
        files: What was written: name -> path.
        gain: One plain sentence on how much tuning gained over the default heuristics.
    """

    study_name: str
    storage: str
    counts: dict[str, int]
    best: dict[str, Any] | None
    importances: dict[str, float] | None
    importance_note: str | None
    failures: list[tuple[int, str, str]] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    gain: str = ""


def _importances(study: optuna.Study) -> tuple[dict[str, float] | None, str | None]:
    completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(completed) < 2:
        return None, f"needs >= 2 completed trials, the study has {len(completed)}"
    try:
        values = optuna.importance.get_param_importances(
            study, evaluator=FanovaImportanceEvaluator(seed=0)
        )
    except (ValueError, RuntimeError, ZeroDivisionError) as err:
        return None, f"could not be computed: {err}"
    if not values or not all(math.isfinite(v) for v in values.values()):
        return None, "the completed trials do not vary their parameters"
    return {k: float(v) for k, v in values.items()}, None


def _best(study: optuna.Study) -> dict[str, Any] | None:
    completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not completed:
        return None
    best = study.best_trial
    return {
        "number": best.number,
        "value": float(best.value) if best.value is not None else math.nan,
        "params": dict(best.params),
        "heuristics": best.user_attrs.get(HEURISTICS_ATTR),
        "scores": best.user_attrs.get(SCORES_ATTR, []),
    }


def _save_figure(axes: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    figure = axes.figure
    figure.set_size_inches(8, 5)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(figure)


def _write_plots(study: optuna.Study, folder: Path, with_importances: bool) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    from optuna.visualization import matplotlib as optuna_plots

    files = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        history = folder / "optimization_history.png"
        _save_figure(optuna_plots.plot_optimization_history(study), history)
        files["optimisation history"] = history
        if with_importances:
            path = folder / "param_importances.png"
            evaluator = FanovaImportanceEvaluator(seed=0)
            _save_figure(optuna_plots.plot_param_importances(study, evaluator=evaluator), path)
            files["parameter importances"] = path
    return files


def _write_trials_csv(study: optuna.Study, path: Path) -> None:
    frame = study.trials_dataframe(attrs=("number", "state", "value", "duration", "params"))
    frame["reason"] = [t.user_attrs.get(REASON_ATTR, "") for t in study.trials]
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def show_study(study: optuna.Study, storage: str, folder: Path) -> StudyOverview:
    """Summarise ``study``; write the one-page summary, best_heuristics.json, trials.csv and
    the plots.

    Args:
        study: The loaded study.
        storage: Its storage URL, as shown to the user (password masked).
        folder: Where the files go (created if needed).
    """
    folder.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    counts = dict(Counter(t.state.name for t in trials))
    failures = [
        (t.number, t.state.name, str(t.user_attrs[REASON_ATTR]))
        for t in trials
        if REASON_ATTR in t.user_attrs
    ]
    best = _best(study)
    importances, note = _importances(study)
    files: dict[str, Path] = {}
    if trials:
        _write_trials_csv(study, folder / "trials.csv")
        files["trials table"] = folder / "trials.csv"
    if best is not None and best["heuristics"] is not None:
        path = folder / "best_heuristics.json"
        atomic_write_json(
            path,
            {
                "schema_version": BEST_HEURISTICS_SCHEMA_VERSION,
                "autoseg_version": __version__,
                "study": study.study_name,
                "trial": best["number"],
                "value": best["value"],
                "objective": _OBJECTIVE,
                "params": best["params"],
                "heuristics": best["heuristics"],
                "settings": study.user_attrs.get(SETTINGS_ATTR),
                "inputs": {"storage": storage, "study": study.study_name},
            },
        )
        files["best heuristics"] = path
    if best is not None:
        files.update(_write_plots(study, folder, importances is not None))
    gain, written = write_summary(
        study, folder, storage=storage, importances=importances, importance_note=note,
        files=files,
    )  # fmt: skip
    files = {**written, **files}
    return StudyOverview(
        study.study_name, storage, counts, best, importances, note, failures, files, gain.sentence
    )


def format_overview(overview: StudyOverview) -> str:
    """The overview as text: counts, best trial, importances, failures, files written."""
    order = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
    counts = ", ".join(f"{overview.counts.get(s, 0)} {s.lower()}" for s in order)
    lines = [f"study {overview.study_name!r} in {overview.storage}", f"trials: {counts}"]
    best = overview.best
    if best is None:
        lines.append("no completed trial yet: nothing to export")
    else:
        lines.append(f"best trial: #{best['number']}, value {best['value']:.4f} ({_OBJECTIVE})")
        for score in best["scores"]:
            dice = "undefined" if score["dice"] is None else f"{score['dice']:.4f}"
            lines.append(
                f"  {score['dataset']} {score['config']} fold {score['fold']}: Dice {dice}"
            )
        lines.append("  parameters:")
        lines.extend(f"    {k} = {v}" for k, v in sorted(best["params"].items()))
        if best["heuristics"]:
            lines.append("  heuristics (all):")
            lines.extend(f"    {k} = {v}" for k, v in best["heuristics"].items())
    if overview.importances is not None:
        lines.append("parameter importances (fANOVA):")
        ranked = sorted(overview.importances.items(), key=lambda kv: -kv[1])
        lines.extend(f"  {name:<32} {value:.3f}" for name, value in ranked)
    else:
        lines.append(f"parameter importances: {overview.importance_note}")
    if overview.failures:
        lines.append("pruned / failed trials with a reason:")
        lines.extend(f"  #{n} {state.lower()}: {why}" for n, state, why in overview.failures[-10:])
    if overview.gain:
        lines.append(overview.gain)
    for name, path in overview.files.items():
        lines.append(f"{name}: {path}")
    if "best heuristics" in overview.files:
        lines.append(
            f"use it: autoseg plan DATASET --heuristics {overview.files['best heuristics']}"
        )
    return "\n".join(lines)
