"""The one-page summary of ``autoseg tune --show``: ``summary.md`` and ``summary.png``.

The page says, for a person: the trials by state and what they cost, the best trial against
the default heuristics' trial (enqueued first in every study) with a paired bootstrap 95 %
interval over the validation cases of the difference in per-case foreground Dice, the
parameters the best trial changed, the parameter importances, the Dice-vs-cost scatter, and
one plain sentence on how much tuning gained. Both files are written atomically.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from autoseg.atomic import atomic_path, atomic_write_text
from autoseg.ensembling.bootstrap import PairedDifference, paired_bootstrap
from autoseg.tuning.objective import SCORES_ATTR
from autoseg.tuning.study import DEFAULTS_ATTR
from autoseg.viz.palette import OKABE_ITO

__all__ = ["TuningGain", "measure_gain", "trial_minutes", "write_summary"]

STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
NUM_BOOTSTRAP = 2000


@dataclass(frozen=True)
class TuningGain:
    """The best trial against the default heuristics' trial.

    Attributes:
        best: The best completed trial (None before the first one).
        default: The first completed trial of the default heuristics (None if none).
        paired: Best minus default in per-case foreground Dice over the validation cases
            both scored, with its bootstrap 95 % interval (None without per-case scores).
        sentence: How much tuning gained, in one plain sentence.
    """

    best: FrozenTrial | None
    default: FrozenTrial | None
    paired: PairedDifference | None
    sentence: str


def trial_minutes(trial: FrozenTrial) -> float:
    """Wall-clock minutes of a finished trial (NaN while it runs)."""
    if trial.datetime_start is None or trial.datetime_complete is None:
        return math.nan
    return (trial.datetime_complete - trial.datetime_start).total_seconds() / 60.0


def _case_scores(trial: FrozenTrial) -> dict[str, float]:
    """``dataset/config/fold/case`` -> foreground Dice, from the trial's ``scores``."""
    scores: dict[str, float] = {}
    for unit in trial.user_attrs.get(SCORES_ATTR) or []:
        for case, dice in (unit.get("cases") or {}).items():
            if dice is not None:
                scores[f"{unit['dataset']}/{unit['config']}/{unit['fold']}/{case}"] = float(dice)
    return scores


def _paired(best: FrozenTrial, default: FrozenTrial) -> PairedDifference | None:
    a, b = _case_scores(best), _case_scores(default)
    keys = sorted(set(a) & set(b))
    if not keys:
        return None
    return paired_bootstrap(
        np.array([a[k] for k in keys]), np.array([b[k] for k in keys]), num_bootstrap=NUM_BOOTSTRAP
    )


def _sentence(best: FrozenTrial | None, default: FrozenTrial | None, paired: Any) -> str:
    if best is None:
        return "No trial has completed yet, so tuning has gained nothing so far."
    if default is None:
        return (
            f"The default heuristics' trial has not completed, so the gain cannot be "
            f"measured; the best trial (#{best.number}) scored {best.value:.4f}."
        )
    if best.number == default.number:
        return (
            f"Tuning has not gained anything: the default heuristics (trial #{default.number}, "
            f"Dice {default.value:.4f}) are still the best trial."
        )
    gain = float(best.value or 0.0) - float(default.value or 0.0)
    text = (
        f"Tuning gained {gain:+.4f} mean foreground Dice: trial #{best.number} scored "
        f"{best.value:.4f} against {default.value:.4f} for the defaults"
    )
    if paired is None or paired.n_cases == 0:
        return text + " (no per-case scores, so no confidence interval)."
    noise = "may be noise" if paired.ci_includes_zero else "is unlikely to be noise"
    return (
        f"{text}; per case {paired.mean_difference:+.4f}, 95% CI "
        f"{paired.ci_low:+.4f} to {paired.ci_high:+.4f} over {paired.n_cases} cases, "
        f"so the gain {noise}."
    )


def measure_gain(study: optuna.Study) -> TuningGain:
    """The best trial against the defaults (see :class:`TuningGain`)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = study.best_trial if complete else None
    defaults = [t for t in complete if t.user_attrs.get(DEFAULTS_ATTR)]
    default = min(defaults, key=lambda t: t.number) if defaults else None
    paired = _paired(best, default) if best is not None and default is not None else None
    return TuningGain(best, default, paired, _sentence(best, default, paired))


def _table(frame: pd.DataFrame) -> list[str]:
    """A DataFrame as a Markdown table (no extra dependency)."""
    cells = frame.astype(str)
    lines = ["| " + " | ".join(str(c) for c in frame.columns) + " |"]
    lines.append("|" + "---|" * len(frame.columns))
    lines.extend("| " + " | ".join(row) + " |" for row in cells.itertuples(index=False))
    return lines


def _number(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _trials_section(trials: Sequence[FrozenTrial]) -> list[str]:
    frame = pd.DataFrame(
        {"state": [t.state.name for t in trials], "minutes": [trial_minutes(t) for t in trials]}
    )
    by_state = frame.groupby("state")["minutes"].agg(["count", "sum"]).reindex(list(STATES))
    by_state = by_state.fillna(0.0).reset_index()
    by_state.columns = pd.Index(["state", "trials", "wall-clock minutes"])
    by_state["trials"] = by_state["trials"].astype(int)
    by_state["wall-clock minutes"] = by_state["wall-clock minutes"].map(lambda m: f"{m:.1f}")
    hours = float(np.nansum(frame["minutes"])) / 60.0 if len(frame) else 0.0
    return [
        "## Trials by state",
        "",
        *_table(by_state),
        "",
        f"{len(trials)} trials, {hours:.2f} trial-hours of wall-clock time in all "
        "(planning, preprocessing, training and validation).",
    ]


def _comparison_section(gain: TuningGain) -> list[str]:
    lines = ["## Best against the default heuristics", ""]
    rows = [("default heuristics", gain.default), ("best", gain.best)]
    frame = pd.DataFrame(
        [
            {
                "": name,
                "trial": "-" if t is None else f"#{t.number}",
                "Dice (objective)": "-" if t is None else _number(t.value),
                "minutes": "-" if t is None else _number(trial_minutes(t), 1),
            }
            for name, t in rows
        ]
    )
    lines += _table(frame)
    paired = gain.paired
    if paired is not None:
        lines += [
            "",
            f"Best minus default, per-case foreground Dice over the {paired.n_cases} "
            f"validation cases both scored: {paired.mean_difference:+.4f}, paired bootstrap "
            f"95% CI {paired.ci_low:+.4f} to {paired.ci_high:+.4f} ({NUM_BOOTSTRAP} "
            "resamples). These cases also chose the best trial, so the interval does not "
            "correct for that selection: confirm on cases no trial saw.",
        ]
    if gain.best is not None and gain.default is not None and gain.best is not gain.default:
        changed = [
            {"parameter": k, "default": _number(gain.default.params.get(k)), "best": _number(v)}
            for k, v in sorted(gain.best.params.items())
            if gain.default.params.get(k) != v
        ]
        if changed:
            lines += ["", "Parameters the best trial changed:", "", *_table(pd.DataFrame(changed))]
    return lines


def _importance_section(importances: Mapping[str, float] | None, note: str | None) -> list[str]:
    lines = ["## Parameter importances (fANOVA)", ""]
    if importances is None:
        return [*lines, f"Not available: {note}."]
    ranked = sorted(importances.items(), key=lambda kv: -kv[1])
    frame = pd.DataFrame([{"parameter": k, "importance": f"{v:.3f}"} for k, v in ranked[:10]])
    return [*lines, *_table(frame)]


def _scatter(axes: Any, trials: Sequence[FrozenTrial], gain: TuningGain) -> None:
    for state, colour, marker in (("COMPLETE", OKABE_ITO[4], "o"), ("PRUNED", "0.6", "x")):
        chosen = [t for t in trials if t.state.name == state]
        values = [t.value if t.value is not None else _last_intermediate(t) for t in chosen]
        axes.scatter(
            [trial_minutes(t) for t in chosen], values, c=colour, marker=marker,
            label=f"{state.lower()} ({len(chosen)})",
        )  # fmt: skip
    for trial, colour, label in ((gain.default, OKABE_ITO[0], "defaults"),
                                 (gain.best, OKABE_ITO[2], "best")):  # fmt: skip
        if trial is not None:
            axes.scatter(
                [trial_minutes(trial)], [trial.value], s=160, facecolors="none",
                edgecolors=colour, linewidths=2, label=f"{label} (#{trial.number})",
            )  # fmt: skip
    axes.set_xlabel("trial wall-clock minutes")
    axes.set_ylabel("mean validation foreground Dice")
    axes.set_title("Dice vs cost (pruned: last intermediate value)")
    axes.legend(loc="lower right", fontsize=8)


def _last_intermediate(trial: FrozenTrial) -> float:
    steps = trial.intermediate_values
    return float(steps[max(steps)]) if steps else math.nan


def _draw(path: Path, trials: Sequence[FrozenTrial], gain: TuningGain,
          importances: Mapping[str, float] | None) -> None:  # fmt: skip
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 4.8))
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    _scatter(left, trials, gain)
    if importances:
        ranked = sorted(importances.items(), key=lambda kv: kv[1])[-10:]
        right.barh([k for k, _ in ranked], [v for _, v in ranked], color=OKABE_ITO[4])
        right.set_xlabel("importance (fANOVA)")
    else:
        right.text(0.5, 0.5, "no parameter importances yet", ha="center", va="center")
        right.set_axis_off()
    right.set_title("parameter importances")
    figure.suptitle(gain.sentence, fontsize=9, wrap=True)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=100, format="png")


def write_summary(
    study: optuna.Study,
    folder: Path,
    *,
    storage: str,
    importances: Mapping[str, float] | None,
    importance_note: str | None,
    files: Mapping[str, Path],
) -> tuple[TuningGain, dict[str, Path]]:
    """Write ``summary.md`` and ``summary.png`` into ``folder``.

    Args:
        study: The loaded study.
        folder: The study folder (exists).
        storage: The storage URL as shown (password masked).
        importances: Parameter -> importance, or None (then ``importance_note`` says why).
        importance_note: Why there are no importances.
        files: The other files ``--show`` wrote (listed on the page).

    Returns:
        The gain and the files written (name -> path).
    """
    trials = study.get_trials(deepcopy=False)
    gain = measure_gain(study)
    png, markdown = folder / "summary.png", folder / "summary.md"
    _draw(png, trials, gain, importances)
    listed = {**files, "summary plot": png}
    lines = [
        f"# Tuning study `{study.study_name}`",
        "",
        f"Storage `{storage}`; objective: mean validation foreground Dice over datasets x "
        "configurations x folds.",
        "",
        f"**{gain.sentence}**",
        "",
        *_trials_section(trials),
        "",
        *_comparison_section(gain),
        "",
        *_importance_section(importances, importance_note),
        "",
        "## Dice vs cost",
        "",
        f"![Dice vs cost and parameter importances]({png.name})",
        "",
        "## Files",
        "",
        *(f"- {name}: `{path.name}`" for name, path in listed.items()),
        "",
    ]
    atomic_write_text(markdown, "\n".join(lines))
    return gain, {"summary plot": png, "summary": markdown}
