"""Summaries of per-case metric tables: NaN-aware means per label/region, counts, a text table.

Pure functions on a :class:`pandas.DataFrame` (no file I/O), so cross-validation code can
summarise out-of-fold predictions held in memory.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from autoseg import __version__
from autoseg.evaluation.metrics import METRIC_NAMES

__all__ = ["SUMMARY_SCHEMA_VERSION", "format_table", "summarize"]

SUMMARY_SCHEMA_VERSION = 1
_REQUIRED = ("case", "target", "kind", *METRIC_NAMES, "pred_voxels", "ref_voxels")
_HEADERS = {
    "dice": "Dice",
    "iou": "IoU",
    "hd95_mm": "HD95 mm",
    "nsd": "NSD",
    "volume_difference_ml": "dVol ml",
}


def _float(value: Any) -> float:
    value = float(value)
    return value if math.isfinite(value) else math.nan


def _target_summary(group: pd.DataFrame) -> dict[str, Any]:
    pred_empty = group["pred_voxels"] == 0
    ref_empty = group["ref_voxels"] == 0
    entry: dict[str, Any] = {
        **({"name": _name(group["name"].iloc[0])} if "name" in group else {}),
        "kind": str(group["kind"].iloc[0]),
        "label_values": str(group["label_values"].iloc[0]) if "label_values" in group else "",
        "num_cases": len(group),
        "num_both_empty": int((pred_empty & ref_empty).sum()),
        "num_missed": int((pred_empty & ~ref_empty).sum()),
        "num_false_positive": int((~pred_empty & ref_empty).sum()),
    }
    for stat in ("mean", "std", "median"):
        entry[stat] = {}
        for metric in METRIC_NAMES:
            column = pd.to_numeric(group[metric], errors="coerce")
            value = column.std(ddof=0) if stat == "std" else getattr(column, stat)()
            entry[stat][metric] = _float(value)
    return entry


def _name(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def summarize(df: pd.DataFrame) -> dict[str, Any]:
    """Means, standard deviations and medians per label/region, and the foreground mean.

    NaN values (both masks empty, see :mod:`autoseg.evaluation.metrics`) are left out of
    every statistic and counted in ``num_both_empty``.

    Args:
        df: Per-case table as returned by
            :func:`autoseg.evaluation.evaluate.evaluate_folder` (columns ``case``,
            ``target``, ``kind``, the metrics, ``pred_voxels``, ``ref_voxels``).

    Returns:
        A JSON-able dict: ``schema_version``, ``autoseg_version``, ``num_cases``,
        ``metrics``, ``targets`` (target -> ``kind``, ``num_cases``, ``num_both_empty``,
        ``num_missed`` (reference only), ``num_false_positive`` (prediction only), and
        ``mean``/``std``/``median`` dicts by metric) and ``foreground_mean`` (the mean over
        the non-zero labels of their per-label means, by metric; regions not included,
        unless no label is scored, as in region-based training: then over the regions).
        With a ``name`` column (display names), each target entry also holds its ``name``.

    Raises:
        ValueError: if a required column is missing.
    """
    missing = [c for c in _REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"metrics table lacks columns {missing}; expected {list(_REQUIRED)}")
    targets = {
        str(target): _target_summary(group)
        for target, group in df.groupby("target", sort=False, dropna=False)
    }
    foreground = [
        entry for name, entry in targets.items() if entry["kind"] == "label" and name != "0"
    ]
    if not foreground:  # only regions scored (region-based training): they are the score
        foreground = [entry for entry in targets.values() if entry["kind"] == "region"]
    foreground_mean = {}
    for metric in METRIC_NAMES:
        means = pd.Series([entry["mean"][metric] for entry in foreground], dtype=float)
        foreground_mean[metric] = _float(means.mean()) if len(means) else math.nan
    return {
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "autoseg_version": __version__,
        "num_cases": int(df["case"].nunique()),
        "metrics": list(METRIC_NAMES),
        "targets": targets,
        "foreground_mean": foreground_mean,
    }


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"


def format_table(summary: dict[str, Any]) -> str:
    """The summary as a fixed-width text table: one line per target, then the foreground mean.

    ``n`` is the number of cases with a defined Dice (both-empty cases are left out). A
    ``name`` column follows the target when the summary holds display names.
    """
    entries = summary["targets"]
    named = any(entry.get("name") and entry["kind"] == "label" for entry in entries.values())
    left = ["target", *(["name"] if named else []), "kind"]
    header = [*left, "n", *(_HEADERS[m] for m in METRIC_NAMES)]
    lines = [header]
    for name, entry in entries.items():
        scored = entry["num_cases"] - entry["num_both_empty"]
        means = [_cell(entry["mean"][m]) for m in METRIC_NAMES]
        display = [entry.get("name", "")] if named else []
        lines.append([name, *display, entry["kind"], str(scored), *means])
    fg = summary["foreground_mean"]
    blank = [""] * (len(left) - 1)
    lines.append(["foreground mean", *blank, "", *(_cell(fg[m]) for m in METRIC_NAMES)])
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    text = [
        "  ".join(
            cell.ljust(w) if i < len(left) else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths))
        ).rstrip()
        for row in lines
    ]
    text.insert(1, "-" * len(text[0]))
    text.insert(len(text) - 1, "-" * len(text[0]))
    notes = [
        f"{name}: {entry['num_both_empty']} case(s) with both masks empty left out of the means"
        for name, entry in summary["targets"].items()
        if entry["num_both_empty"]
    ]
    return "\n".join(text + notes)
