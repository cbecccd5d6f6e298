"""The text ``autoseg find-best`` prints: candidates, postprocessing, comparison, command.

Labels are shown by name where dataset.json names them (``Anterior (1)``), else as
``label 1``; best.json keeps the values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from autoseg.data.label_names import display_label
from autoseg.ensembling.best_choice import BestChoice, CandidateScore
from autoseg.errors import PlansError
from autoseg.planner.plans import load_plans
from autoseg.workspace import Workspace

__all__ = ["format_best_choice", "label_title", "workspace_target_names"]

_NAMES = {"dice": "Dice", "iou": "IoU", "nsd": "NSD", "hd95": "HD95 mm"}


def _cell(value: float, signed: bool = False) -> str:
    """4 decimals (1 from 100 on, e.g. HD95 in mm), ``+`` sign when ``signed``, NaN as -."""
    if math.isnan(value):
        return "-"
    decimals = 4 if abs(value) < 100 else 1
    return f"{value:+.{decimals}f}" if signed else f"{value:.{decimals}f}"


def label_title(value: str | int, names: Mapping[str, str]) -> str:
    """``"Anterior (1)"`` for a named label value, ``"label 1"`` otherwise (``names``: the
    targets' names by target, as :attr:`~autoseg.planner.plans.Plans.target_names`)."""
    return display_label(int(value), {int(value): names.get(str(value), "")})


def workspace_target_names(workspace: Workspace) -> dict[str, str]:
    """Display names of a workspace's targets (plans.json); empty when it has no plans."""
    try:
        return load_plans(workspace.plans_json).target_names
    except PlansError:
        return {}


def _table(choice: BestChoice, names: Mapping[str, str]) -> list[str]:
    candidates: list[CandidateScore] = list(choice.candidates)
    classes = list(candidates[0].per_class) if candidates else []
    regions = list(candidates[0].per_region) if candidates else []
    titles = [label_title(c, names) for c in classes]
    header = ["rank", "candidate", "score", "95% CI", *titles, *regions]
    rows = [header]
    for rank, c in enumerate(candidates, start=1):
        ci = "-" if math.isnan(c.ci95[0]) else f"{_cell(c.ci95[0])}-{_cell(c.ci95[1])}"
        rows.append(
            [
                str(rank),
                c.name,
                _cell(c.score),
                ci,
                *(_cell(c.per_class[k]) for k in classes),
                *(_cell(c.per_region[k]) for k in regions),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 1 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths))
        ).rstrip()
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return lines


def _postprocessing(choice: BestChoice, metric: str, names: Mapping[str, str]) -> list[str]:
    lines = [f"Postprocessing (keep the largest connected component), {metric} before -> after:"]
    if not choice.postprocessing_decisions:
        lines.append("  none decided (region-based training keeps its predictions as they are)")
    for d in choice.postprocessing_decisions:
        verdict = "applied" if d.apply else "not applied"
        lines.append(
            f"  {label_title(d.label, names)}: {_cell(d.before)} -> {_cell(d.after)}  {verdict} "
            f"({d.num_changed} of {d.num_cases} cases changed)"
        )
    return lines


def _comparison(choice: BestChoice, metric: str) -> list[str]:
    comp = choice.comparison
    if comp is None:
        return [f"Only one candidate ({'+'.join(choice.configs)}): no comparison."]
    verdict = (
        "the CI includes 0: the difference may be noise"
        if comp.ci_includes_zero
        else "the CI excludes 0: the win is unlikely to be noise"
    )
    return [
        f"Winner vs runner-up: {'+'.join(comp.winner)} minus {'+'.join(comp.runner_up)}, "
        f"mean paired difference {_cell(comp.mean_difference, signed=True)} {metric}",
        f"  (bootstrap 95% CI {_cell(comp.ci95[0], signed=True)} to "
        f"{_cell(comp.ci95[1], signed=True)}, {comp.n_cases} cases, "
        f"{comp.num_bootstrap} resamples): {verdict}.",
    ]


def format_best_choice(choice: BestChoice, names: Mapping[str, str] | None = None) -> str:
    """The find-best report: candidate table, postprocessing, comparison and predict command.

    Args:
        choice: find-best's choice.
        names: Display names of the targets (:func:`workspace_target_names`); labels are
            shown by value without them.
    """
    names = names or {}
    metric = _NAMES.get(choice.metric, choice.metric)
    better = "lower" if choice.metric == "hd95" else "higher"
    num_cases = choice.candidates[0].num_cases if choice.candidates else 0
    lines = [
        f"Cross-validation over {len(choice.folds)} folds ({num_cases} cases), "
        f"foreground mean {metric} ({better} is better):",
        *_table(choice, names),
        "",
        *_postprocessing(choice, metric, names),
        "",
        *_comparison(choice, metric),
        "",
        f"Best: {'+'.join(choice.configs)} ({metric} {_cell(choice.score)}, "
        f"{_cell(choice.score_postprocessed)} with postprocessing)",
        "Predict with:",
        f"  {choice.predict_command}",
    ]
    return "\n".join(lines)
