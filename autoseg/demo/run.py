"""``autoseg demo``: the whole pipeline on a built-in phantom, step by step, with timings.

generate -> plan -> splits -> train -> find-best -> predict -> evaluate -> overlay; each
step is the library call behind one subcommand (see :mod:`autoseg.demo.steps`), skipped
when its outputs are current, so a re-run is fast.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from autoseg.data.synthetic import case_id_of
from autoseg.demo.data import prepare_demo_data
from autoseg.demo.settings import DemoSettings, demo_settings
from autoseg.demo.steps import (
    DemoPaths,
    check_workspace,
    evaluate_step,
    find_best_step,
    overlay_step,
    plan_step,
    predict_step,
    reset_stale_results,
    splits_step,
    train_step,
)
from autoseg.ensembling.best_choice import BestChoice
from autoseg.inference.batch_prediction import PredictionReport
from autoseg.log import get_logger
from autoseg.planner.workflow import PlanReport
from autoseg.trainers.loop import FoldResult
from autoseg.viz.overlays import OverlayLayout
from autoseg.workspace import Workspace

__all__ = ["DemoResult", "run_demo", "run_demo_settings"]

_log = get_logger(__name__)
T = TypeVar("T")


@dataclass
class DemoResult:
    """Everything a demo run did and wrote (what the report prints).

    Attributes:
        settings: The settings used.
        paths: The demo's own paths (data, predictions, evaluation, overlay).
        plan: What planning did.
        folds: One result per trained (configuration, fold).
        best: find-best's choice.
        prediction: What predicting the held-out cases did.
        evaluation: The held-out evaluation summary (summary.json content).
        overlay: The overlay picture drawn.
        label_names: Foreground label value -> class name (from the plan).
        seconds: Wall-clock seconds per step, in order.
        data_reused: Whether the dataset was reused rather than generated.
        results_reset: Whether earlier results were removed (other settings or data).
    """

    settings: DemoSettings
    paths: DemoPaths
    plan: PlanReport | None = None
    folds: list[FoldResult] = field(default_factory=list)
    best: BestChoice | None = None
    prediction: PredictionReport | None = None
    evaluation: dict[str, Any] = field(default_factory=dict)
    overlay: OverlayLayout | None = None
    label_names: dict[int, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    data_reused: bool = False
    results_reset: bool = False

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds.values()))

    def timed(self, name: str, step: Callable[[], T]) -> T:
        """Run one step, log its start and record its wall time."""
        _log.info("demo: %s ...", name)
        start = time.perf_counter()
        try:
            return step()
        finally:
            self.seconds[name] = time.perf_counter() - start


def run_demo(workspace: Workspace, *, quick: bool, seed: int = 0) -> DemoResult:
    """``autoseg demo [--quick] [--seed S]``: run the preset settings (see
    :func:`autoseg.demo.settings.demo_settings`) in ``workspace``."""
    return run_demo_settings(workspace, demo_settings(quick=quick, seed=seed))


def run_demo_settings(workspace: Workspace, settings: DemoSettings) -> DemoResult:
    """Run every demo step with ``settings`` in ``workspace``.

    Args:
        workspace: Where everything goes: the dataset to ``<work>/demo_data``, the pipeline's
            artefacts as ``autoseg plan/train/find-best`` write them, and the demo's
            predictions, evaluation and overlay next to them.
        settings: What to generate, plan, train and predict.

    Returns:
        What was done and written, with the held-out evaluation.

    Raises:
        ConfigError: the workspace holds another dataset's plan.
        AutosegError: any step's error (the message names the file).
    """
    paths = DemoPaths(workspace)
    result = DemoResult(settings, paths)
    for line in settings.describe():
        _log.info("demo settings: %s", line)
    check_workspace(paths)
    _, result.data_reused = result.timed(
        "generate", lambda: prepare_demo_data(workspace, settings.phantom)
    )
    result.plan = result.timed("plan", lambda: plan_step(paths, settings))
    plans = result.plan.plans
    result.label_names = {v: k for k, v in plans.labels.items() if v != 0}
    result.timed("splits", lambda: splits_step(paths, plans, settings.num_folds))
    result.results_reset = reset_stale_results(paths, settings)
    result.folds = result.timed("train", lambda: train_step(paths, settings))
    result.best = result.timed("find-best", lambda: find_best_step(paths, settings.train.seed))
    result.prediction = result.timed("predict", lambda: predict_step(paths, settings))
    result.evaluation = result.timed("evaluate", lambda: evaluate_step(paths))
    spec = settings.phantom
    case_id = case_id_of(spec.num_train_cases)  # the first held-out case
    result.overlay = result.timed(
        "overlay", lambda: overlay_step(paths, case_id, spec.file_ending, result.label_names)
    )
    return result
