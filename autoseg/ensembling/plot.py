"""The cross-validation bar chart of ``autoseg find-best``: one bar per candidate, with its
bootstrap 95 % interval as an error bar; the chosen candidate is highlighted."""

from __future__ import annotations

import math
from pathlib import Path

from autoseg.atomic import atomic_path
from autoseg.ensembling.best_choice import BestChoice

__all__ = ["plot_cv_comparison"]

_LABELS = {"dice": "Dice", "iou": "IoU", "nsd": "NSD (1 mm)", "hd95": "HD95 (mm)"}


def plot_cv_comparison(choice: BestChoice, path: Path | str) -> Path:
    """Draw the candidates' cross-validated scores as a PNG bar chart (written atomically).

    Args:
        choice: find-best's result (candidates best first, with ``ci95``).
        path: Output ``.png`` path.

    Returns:
        ``path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    candidates = choice.candidates
    names = [c.name for c in candidates]
    scores = [c.score if not math.isnan(c.score) else 0.0 for c in candidates]
    low = [
        max(s - c.ci95[0], 0.0) if not math.isnan(c.ci95[0]) else 0.0
        for s, c in zip(scores, candidates)
    ]
    high = [
        max(c.ci95[1] - s, 0.0) if not math.isnan(c.ci95[1]) else 0.0
        for s, c in zip(scores, candidates)
    ]
    figure = Figure(figsize=(max(4.0, 1.2 * len(names) + 2.0), 4.0), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    colours = ["tab:orange" if c.configs == choice.configs else "tab:blue" for c in candidates]
    positions = list(range(len(names)))
    axes.bar(positions, scores, yerr=[low, high], capsize=6, color=colours)
    axes.set_xticks(positions, names, rotation=20, ha="right")
    label = _LABELS.get(choice.metric, choice.metric)
    better = "lower" if choice.metric == "hd95" else "higher"
    axes.set_ylabel(f"{label}, foreground mean ({better} is better)")
    folds = len(choice.folds)
    axes.set_title(f"{folds}-fold cross-validation (error bars: bootstrap 95% CI)", fontsize=10)
    if choice.metric != "hd95":
        axes.set_ylim(0.0, 1.1)
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
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    return path
