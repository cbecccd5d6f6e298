"""Drawing an overlay: grey slices, the reference as filled areas and the prediction as
outlines, one colour per label, and a legend that fits (``autoseg show``).

Reference and prediction use the same colour for a label and differ by style: the
reference is a translucent filled area, the prediction a solid outline with a thin dark
edge. Perfect agreement is an outline around a filled area of its colour, a missed region a
filled area without outline, a false positive an outline around nothing. Colours are
Okabe-Ito's (colour-blind safe, :mod:`autoseg.viz.palette`). The legend lists every label
by name and the two styles, in as many columns as fit the figure's width and as many rows
as needed. Matplotlib's Agg canvas is used (no pyplot state).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from autoseg.data.label_names import display_label
from autoseg.viz.palette import label_colour

__all__ = ["FILL_ALPHA", "PREDICTION_STYLE", "REFERENCE_STYLE", "draw_overlay", "legend_columns"]

FILL_ALPHA = 0.4
REFERENCE_STYLE = "reference: filled area"
PREDICTION_STYLE = "prediction: outline"
FIGURE_WIDTH_INCHES = 13.0
_DPI = 100


def legend_columns(entries: Sequence[str], width_px: float, fontsize: float = 9.0) -> int:
    """Columns of a legend whose entries all fit into ``width_px`` (at least 1)."""
    if not entries:
        return 1
    char_px = 0.6 * fontsize * _DPI / 72  # an average character of DejaVu Sans
    column_px = max(len(e) for e in entries) * char_px + 45  # the handle and the gaps
    return max(1, min(len(entries), math.floor(0.95 * width_px / column_px)))


def _fill(plane: np.ndarray, values: Sequence[int]) -> np.ndarray:
    """RGBA image of a reference slice: each label's colour at FILL_ALPHA, else clear."""
    from matplotlib.colors import to_rgb

    rgba = np.zeros((*plane.shape, 4), dtype=np.float32)
    for index, value in enumerate(values):
        mask = plane == value
        if mask.any():
            rgba[mask, :3] = to_rgb(label_colour(index))
            rgba[mask, 3] = FILL_ALPHA
    return rgba


def _outline(axes: Any, plane: np.ndarray, values: Sequence[int]) -> None:
    from matplotlib import patheffects

    if min(plane.shape) < 2:
        return
    edge = [patheffects.withStroke(linewidth=3.2, foreground="black")]
    for index, value in enumerate(values):
        mask = plane == value
        if mask.any() and not mask.all():
            contours = axes.contour(
                mask.astype(np.float32), levels=[0.5], colors=[label_colour(index)],
                linewidths=1.6,
            )  # fmt: skip
            contours.set(path_effects=edge)


def draw_overlay(
    image_planes: Sequence[np.ndarray],
    ref_planes: Sequence[np.ndarray | None],
    seg_planes: Sequence[np.ndarray | None],
    panels: Sequence[tuple[str, float, tuple[str, str, str, str]]],
    *,
    window: tuple[float, float],
    values: Sequence[int],
    names: Mapping[int, str],
    title: str,
) -> tuple[Any, tuple[str, ...]]:
    """The overlay figure and its legend entries.

    Args:
        image_planes: One grey slice per panel, rows and columns as displayed.
        ref_planes: The reference label slices (None: no reference).
        seg_planes: The prediction label slices (None: no prediction).
        panels: Per panel (title, pixel aspect, patient directions top/bottom/left/right).
        window: Grey-level window (low, high).
        values: Label values in either map, sorted (their order gives the colours).
        names: Label value -> name.
        title: Figure title.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    figure = Figure(figsize=(FIGURE_WIDTH_INCHES, 5.2), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes_row = figure.subplots(1, len(panels), squeeze=False)[0]
    for i, (axes, (name, aspect, ends)) in enumerate(zip(axes_row, panels)):
        axes.imshow(image_planes[i], cmap="gray", vmin=window[0], vmax=window[1],
                    aspect=aspect, interpolation="nearest")  # fmt: skip
        ref, seg = ref_planes[i], seg_planes[i]
        if ref is not None:
            axes.imshow(_fill(ref, values), aspect=aspect, interpolation="nearest")
        if seg is not None:
            _outline(axes, seg, values)
        _annotate(axes, name, ends)
    has_ref = any(p is not None for p in ref_planes)
    has_seg = any(p is not None for p in seg_planes)
    handles: list[Any] = []
    entries: list[str] = []
    for index, value in enumerate(values):
        handles.append(Patch(facecolor=label_colour(index), edgecolor=label_colour(index)))
        entries.append(display_label(value, names))
    if values and has_ref:
        handles.append(Patch(facecolor="0.55", alpha=FILL_ALPHA + 0.2, edgecolor="none"))
        entries.append(REFERENCE_STYLE)
    if values and has_seg:
        handles.append(Line2D([], [], color="0.3", linewidth=1.8))
        entries.append(PREDICTION_STYLE)
    if handles:
        columns = legend_columns(entries, FIGURE_WIDTH_INCHES * _DPI)
        figure.legend(handles, entries, loc="outside lower center", ncol=columns, fontsize=9,
                      frameon=False)  # fmt: skip
    figure.suptitle(title, fontsize=11)
    return figure, tuple(entries)


def _annotate(axes: Any, name: str, ends: tuple[str, str, str, str]) -> None:
    axes.set_title(name, fontsize=10)
    axes.set_xticks([])
    axes.set_yticks([])
    style = {"color": "yellow", "fontsize": 9, "transform": axes.transAxes}
    top, bottom, left, right = ends
    axes.text(0.5, 0.98, top, ha="center", va="top", **style)
    axes.text(0.5, 0.02, bottom, ha="center", va="bottom", **style)
    axes.text(0.02, 0.5, left, ha="left", va="center", **style)
    axes.text(0.98, 0.5, right, ha="right", va="center", **style)
