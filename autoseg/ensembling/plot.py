"""The cross-validation chart of ``autoseg find-best`` (``results/cv_comparison.png``).

Left: one bar per candidate (configuration or ensemble) with its foreground-mean score and
bootstrap 95 % interval as an error bar; the chosen candidate is drawn in orange and the
legend says so. Right: the per-label breakdown, one group of bars per label (by name) and
region, one bar per candidate, the chosen one outlined. Colours are Okabe-Ito's
(colour-blind safe); Matplotlib's Agg canvas, no pyplot state; the PNG is written
atomically.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from autoseg.atomic import atomic_path
from autoseg.data.label_names import display_label
from autoseg.ensembling.best_choice import BestChoice
from autoseg.viz.palette import OKABE_ITO

__all__ = ["comparison_figure", "plot_cv_comparison"]

_LABELS = {"dice": "Dice", "iou": "IoU", "nsd": "NSD (1 mm)", "hd95": "HD95 (mm)"}
CHOSEN_COLOUR = OKABE_ITO[0]  # orange
OTHER_COLOUR = OKABE_ITO[4]  # blue
_CANDIDATE_COLOURS = (OKABE_ITO[0], OKABE_ITO[4], OKABE_ITO[2], OKABE_ITO[6], OKABE_ITO[1])


def _zero_nan(value: float) -> float:
    return 0.0 if math.isnan(value) else value


def _overview(axes: Any, choice: BestChoice, metric: str) -> None:
    from matplotlib.patches import Patch

    candidates = choice.candidates
    scores = [_zero_nan(c.score) for c in candidates]
    low = [
        max(s - c.ci95[0], 0.0) if not math.isnan(c.ci95[0]) else 0.0
        for s, c in zip(scores, candidates)
    ]
    high = [
        max(c.ci95[1] - s, 0.0) if not math.isnan(c.ci95[1]) else 0.0
        for s, c in zip(scores, candidates)
    ]
    chosen = [c.configs == choice.configs for c in candidates]
    positions = list(range(len(candidates)))
    axes.bar(
        positions,
        scores,
        yerr=[low, high],
        capsize=6,
        color=[CHOSEN_COLOUR if c else OTHER_COLOUR for c in chosen],
    )
    axes.set_xticks(positions, [c.name for c in candidates], rotation=20, ha="right")
    better = "lower" if choice.metric == "hd95" else "higher"
    axes.set_ylabel(f"{metric}, foreground mean ({better} is better)")
    axes.set_title("all labels", fontsize=10)
    for x, score, above in zip(positions, scores, high):
        axes.annotate(
            f"{score:.3f}",
            (x, score + above),
            textcoords="offset points",
            xytext=(0, 4),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    handles = [Patch(color=CHOSEN_COLOUR, label=f"chosen: {'+'.join(choice.configs)}")]
    if len(candidates) > 1:
        handles.append(Patch(color=OTHER_COLOUR, label="other candidates"))
    axes.legend(
        handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.3), fontsize=8, frameon=False
    )


def _per_label(axes: Any, choice: BestChoice, names: Mapping[int, str], metric: str) -> None:
    candidates = choice.candidates
    first = candidates[0]
    targets = [(k, display_label(int(k), names)) for k in first.per_class]
    targets += [(k, f"{k} (region)") for k in first.per_region]
    width = 0.8 / max(len(candidates), 1)
    for i, candidate in enumerate(candidates):
        values = {**candidate.per_class, **candidate.per_region}
        is_chosen = candidate.configs == choice.configs
        axes.bar(
            [t + (i - (len(candidates) - 1) / 2) * width for t in range(len(targets))],
            [_zero_nan(values[k]) for k, _ in targets],
            width=width,
            color=_CANDIDATE_COLOURS[i % len(_CANDIDATE_COLOURS)],
            edgecolor="black" if is_chosen else "none",
            linewidth=1.5,
            label=f"{candidate.name}{' (chosen)' if is_chosen else ''}",
        )
    axes.set_xticks(range(len(targets)), [label for _, label in targets], rotation=20, ha="right")
    axes.set_ylabel(metric)
    axes.set_title("per label", fontsize=10)
    axes.legend(
        loc="upper center",
        bbox_to_anchor=(0.5, -0.3),
        fontsize=8,
        frameon=False,
        ncol=min(3, len(candidates)),
    )


def comparison_figure(choice: BestChoice, label_names: Mapping[int, str] | None = None) -> Any:
    """The chart of ``choice`` as a Matplotlib figure (see the module docstring).

    Args:
        choice: find-best's result (candidates best first, with ``ci95`` and per label).
        label_names: Label value -> name (``"lesion (1)"`` in the per-label panel).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    metric = _LABELS.get(choice.metric, choice.metric)
    labels = len(choice.candidates[0].per_class) + len(choice.candidates[0].per_region)
    width = max(4.0, 1.2 * len(choice.candidates) + 2.0)
    width += max(4.0, 0.5 * labels * max(len(choice.candidates), 1) + 2.0)
    figure = Figure(figsize=(width, 4.8), layout="constrained")
    FigureCanvasAgg(figure)
    overview, breakdown = figure.subplots(1, 2, width_ratios=(1, max(1.0, labels / 2)))
    _overview(overview, choice, metric)
    _per_label(breakdown, choice, label_names or {}, metric)
    if choice.metric != "hd95":
        overview.set_ylim(0.0, 1.1)
        breakdown.set_ylim(0.0, 1.05)
    folds = len(choice.folds)
    figure.suptitle(
        f"{folds}-fold cross-validation, {choice.candidates[0].num_cases} cases "
        "(error bars: bootstrap 95% CI)",
        fontsize=11,
    )
    return figure


def plot_cv_comparison(
    choice: BestChoice, path: Path | str, label_names: Mapping[int, str] | None = None
) -> Path:
    """Draw :func:`comparison_figure` into a PNG (written atomically); returns ``path``."""
    path = Path(path)
    figure = comparison_figure(choice, label_names)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    return path
