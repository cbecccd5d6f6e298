"""The text ``autoseg demo`` prints: settings, step timings, the held-out Dice per class and
the path of everything written."""

from __future__ import annotations

import math
from pathlib import Path

from autoseg.artefacts import read_json
from autoseg.demo.run import DemoResult
from autoseg.workspace import FoldPaths

__all__ = ["dice_table", "format_demo_report", "written_paths"]


def _cell(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4f}"


def dice_table(result: DemoResult) -> list[str]:
    """The held-out Dice per foreground class (mean and std over the held-out cases)."""
    targets = result.evaluation.get("targets", {})
    chosen = "+".join(result.best.configs) if result.best else "?"
    lines = [
        f"Held-out Dice ({result.evaluation.get('num_cases', 0)} cases of "
        f"demo_data/imagesTs against labelsTs; --config best = {chosen}):",
        f"  {'class':<12} {'label':>5} {'Dice':>8} {'std':>8}",
    ]
    for value, name in sorted(result.label_names.items()):
        entry = targets.get(str(value), {})
        mean = float(entry.get("mean", {}).get("dice", math.nan))
        std = float(entry.get("std", {}).get("dice", math.nan))
        lines.append(f"  {name:<12} {value:>5} {_cell(mean):>8} {_cell(std):>8}")
    overall = float(result.evaluation.get("foreground_mean", {}).get("dice", math.nan))
    lines.append(f"  {'mean':<12} {'':>5} {_cell(overall):>8}")
    return lines


def written_paths(result: DemoResult) -> list[tuple[str, Path]]:
    """(what, path) of everything the run wrote or reused, in pipeline order."""
    ws, paths = result.paths.workspace, result.paths
    items = [
        ("workspace", ws.root),
        ("dataset", paths.data),
        ("planner overrides", paths.heuristics),
        ("fingerprint", ws.fingerprint_json),
        ("plans", ws.plans_json),
        ("splits", ws.splits_json),
        ("results", ws.results_dir),
    ]
    items += [
        (f"progress {r.config_name} fold {r.fold}", FoldPaths(r.fold_dir).progress_png)
        for r in result.folds
    ]
    items += [
        ("cross-validation chart", ws.results_dir / "cv_comparison.png"),
        ("best choice", ws.best_json),
        ("predictions", paths.predictions),
        ("metrics", paths.evaluation / "metrics.csv"),
        ("metrics summary", paths.evaluation / "summary.json"),
    ]
    if result.overlay is not None:
        items.append(("overlay", result.overlay.path))
    return items


def _training(result: DemoResult) -> list[str]:
    lines = ["Training (validation Dice of each fold):"]
    for r in result.folds:
        summary = r.summary or read_json(FoldPaths(r.fold_dir).validation / "summary.json") or {}
        dice = float(summary.get("summary", {}).get("foreground_mean", {}).get("dice", math.nan))
        epochs = "" if r.epochs < 0 else f"{r.epochs} epochs"
        lines.append(
            f"  {r.config_name:<10} fold {r.fold!s:<3} {r.status:<9} {epochs:<10} {_cell(dice)}"
        )
    return lines


def _cross_validation(result: DemoResult) -> list[str]:
    best = result.best
    if best is None:
        return []
    rule = ", ".join(
        f"{result.label_names.get(int(k), k)} {'on' if v else 'off'}"
        for k, v in sorted(best.postprocessing.items())
    )
    lines = [f"Cross-validation ({len(best.folds)} folds, find-best), {best.metric} per candidate:"]
    for candidate in best.candidates:
        mark = "  <- chosen" if candidate.configs == best.configs else ""
        lines.append(f"  {candidate.name:<20} {_cell(candidate.score)}{mark}")
    lines.append(f"  largest-component postprocessing: {rule or 'none'}")
    return lines


def format_demo_report(result: DemoResult) -> str:
    """The whole report (see the module docstring)."""
    timings = ", ".join(f"{name} {s:.1f} s" for name, s in result.seconds.items())
    lines = [f"autoseg demo ({result.settings.preset}) finished in {result.total_seconds:.0f} s"]
    lines += ["Settings:"] + [f"  {line}" for line in result.settings.describe()]
    lines.append(f"Steps: {timings}")
    if result.plan is not None:
        lines.append("Planned configurations:")
        for name, config in result.plan.plans.configurations.items():
            kind = "output segment" if name == "deepmedic" else "patch"
            lines.append(
                f"  {name}: {kind} {'x'.join(map(str, config.patch_size))}, batch "
                f"{config.batch_size}, {config.estimated_gflops_per_iteration:.1f} GFLOP/iteration"
            )
    lines += _training(result)
    lines += _cross_validation(result)
    lines += dice_table(result)
    lines.append("Written:")
    items = written_paths(result)
    width = max(len(what) for what, _ in items)
    lines += [f"  {what:<{width}}  {path.resolve()}" for what, path in items]
    if result.best is not None:
        lines.append(f"Predict new scans with: {result.best.predict_command}")
    return "\n".join(lines)
