"""The objective of ``autoseg tune``: plan with sampled heuristics, train briefly, score.

One trial, in ``<work>/tuning/studies/<study>/trial_<n>/``:

1. sample a :class:`~autoseg.planner.heuristics.PlannerHeuristics` (the CPU or GPU search
   space, by where training runs) and write it to ``heuristics.json``;
2. per dataset, seed ``<dataset>/`` with the base workspace's files and run ``autoseg plan``
   (plan + preprocess; verify and fingerprint are reused);
3. train every requested configuration on every requested fold with a fixed length (epochs,
   or an even share of the trial's time budget), reporting the smoothed pseudo-Dice per epoch
   so the pruner can stop bad heuristics early;
4. return the mean over datasets x configurations x folds of the fold's validation mean
   foreground Dice (``validation/summary.json``); each unit's score, with the foreground
   Dice of every validation case (``cases``, for the paired bootstrap of ``--show``), is kept
   in the trial's ``scores`` user attribute.

A plan that fails for the sampled heuristics (nothing fits the memory target, an invalid
combination) or a training that runs out of memory prunes the trial with the reason in its
``failure`` user attribute: the sampler learns to avoid the region and the study goes on.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch

from autoseg.atomic import atomic_write_json
from autoseg.errors import ConfigError, PlansError
from autoseg.log import get_logger
from autoseg.planner.heuristics import PlannerHeuristics
from autoseg.planner.plans import load_plans
from autoseg.planner.search_space import suggest_heuristics
from autoseg.planner.workflow import run_plan
from autoseg.trainers.config import TrainConfig, TrainingRequest
from autoseg.trainers.cross_validation import run_training
from autoseg.tuning.datasets import (
    PreparedDataset,
    seed_trial_workspace,
    share_cpu_speed,
    share_splits,
)
from autoseg.tuning.progress import IntermediateReporter
from autoseg.tuning.request import TuneRequest
from autoseg.tuning.worker import REASON_ATTR, TrialFailure
from autoseg.workspace import Workspace

__all__ = [
    "HEURISTICS_ATTR",
    "SCORES_ATTR",
    "TrialContext",
    "TrialObjective",
    "case_dice",
    "remove_bulky_files",
]

HEURISTICS_ATTR = "heuristics"
SCORES_ATTR = "scores"
_log = get_logger(__name__)


@dataclass(frozen=True)
class TrialContext:
    """What every trial of one worker shares.

    Attributes:
        request: The tuning options.
        datasets: The prepared datasets.
        study_dir: ``<work>/tuning/studies/<study>/``.
        device: "cuda" or "cpu": where trials plan for and train.
        base_heuristics: Values of the heuristics outside the search space.
    """

    request: TuneRequest
    datasets: tuple[PreparedDataset, ...]
    study_dir: Path
    device: str
    base_heuristics: PlannerHeuristics

    @property
    def on_cpu(self) -> bool:
        return self.device == "cpu"


class TrialObjective:
    """``objective(trial) -> mean validation foreground Dice`` (see the module docstring)."""

    def __init__(self, context: TrialContext) -> None:
        self.context = context

    def __call__(self, trial: optuna.Trial) -> float:
        context = self.context
        heuristics = _sample(trial, context)
        trial_dir = context.study_dir / f"trial_{trial.number}"
        trial.set_user_attr("workspace", str(trial_dir))
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        if trial_dir.exists():  # left by an older study of the same name: never reuse it
            _log.warning("removing %s, left by an earlier study", trial_dir)
            shutil.rmtree(trial_dir)
        trial_dir.mkdir(parents=True)
        heuristics_path = trial_dir / "heuristics.json"
        atomic_write_json(heuristics_path, {"heuristics": heuristics.to_dict()})
        reporter = IntermediateReporter(trial, context.request.num_units)
        scores: list[dict[str, Any]] = []
        try:
            for dataset in context.datasets:
                workspace = Workspace(trial_dir / dataset.folder)
                _plan(trial, dataset, workspace, heuristics_path, context)
                reporter.start_dataset(dataset.folder)
                scores.extend(_train(trial, dataset, workspace, context, reporter))
        finally:
            trial.set_user_attr(SCORES_ATTR, scores)
            if not context.request.keep_trial_files:
                remove_bulky_files(trial_dir)
        dices = [s["dice"] for s in scores if s["dice"] is not None]
        if not dices:
            raise TrialFailure("no validation Dice was defined (no foreground anywhere?)")
        return sum(dices) / len(dices)


def _sample(trial: optuna.Trial, context: TrialContext) -> PlannerHeuristics:
    try:
        heuristics = suggest_heuristics(
            trial,
            on_cpu=context.on_cpu,
            base=context.base_heuristics,
            configs=context.request.configs,
        )
    except ConfigError as err:
        trial.set_user_attr(REASON_ATTR, f"invalid heuristics: {err}")
        raise optuna.TrialPruned(f"invalid heuristics: {err}") from None
    trial.set_user_attr(HEURISTICS_ATTR, heuristics.to_dict())
    return heuristics


def _plan(
    trial: optuna.Trial,
    dataset: PreparedDataset,
    workspace: Workspace,
    heuristics_path: Path,
    context: TrialContext,
) -> None:
    seed_trial_workspace(dataset, workspace)
    try:
        run_plan(
            dataset.path,
            workspace,
            heuristics_path=heuristics_path,
            device=context.device,
            gpu_memory_bytes=context.request.gpu_memory_bytes,
            num_workers=context.request.num_workers,
        )
    except (PlansError, ConfigError) as err:
        reason = f"planning {dataset.name} failed: {err.message}"
        trial.set_user_attr(REASON_ATTR, reason)
        raise optuna.TrialPruned(reason) from None
    share_cpu_speed(dataset, workspace)


def _training_request(context: TrialContext, planned: Sequence[str]) -> TrainingRequest:
    """The trial's training: the requested configurations its heuristics planned."""
    request = context.request
    config = TrainConfig(
        epochs=request.epochs,
        iters_per_epoch=request.iters_per_epoch,
        val_iters=request.val_iters,
        time_budget_seconds=request.unit_budget_seconds,
        device=context.device,
        seed=request.seed,
        num_workers=request.loader_workers,
        threads=request.threads,
    )
    configs = tuple(c for c in request.configs if c in planned)
    return TrainingRequest(configs=configs, folds=request.folds, config=config)


def _train(
    trial: optuna.Trial,
    dataset: PreparedDataset,
    workspace: Workspace,
    context: TrialContext,
    reporter: IntermediateReporter,
) -> list[dict[str, Any]]:
    planned = list(load_plans(workspace.plans_json).configurations)
    if not any(c in planned for c in context.request.configs):
        reason = f"these heuristics plan none of {', '.join(context.request.configs)}"
        trial.set_user_attr(REASON_ATTR, reason)
        raise optuna.TrialPruned(reason)
    try:
        request = _training_request(context, planned)
        results = run_training(workspace, request, on_epoch=reporter.on_epoch)
    except torch.OutOfMemoryError as err:
        reason = f"training on {dataset.name} ran out of memory: {str(err).splitlines()[0]}"
        trial.set_user_attr(REASON_ATTR, reason)
        raise optuna.TrialPruned(reason) from None
    finally:
        share_splits(dataset, workspace)
    scores = []
    for result in results:
        dice = math.nan
        if result.summary and result.summary.get("summary"):
            dice = float(result.summary["summary"]["foreground_mean"]["dice"])
        scores.append(
            {
                "dataset": dataset.name,
                "config": result.config_name,
                "fold": result.fold,
                "dice": dice if math.isfinite(dice) else None,
                "epochs": result.epochs,
                "cases": case_dice(result.summary),
            }
        )
        _log.info(
            "trial %d: %s %s fold %s: validation Dice %s",
            trial.number,
            dataset.name,
            result.config_name,
            result.fold,
            f"{dice:.4f}" if math.isfinite(dice) else "undefined",
        )
    return scores


def case_dice(summary: dict[str, Any] | None) -> dict[str, float | None]:
    """Case -> its foreground Dice (mean over the foreground labels, or over the regions
    when no label is scored, as the summary's ``foreground_mean``) from a validation
    ``summary.json``; None where undefined (no foreground in prediction and reference)."""
    rows = (summary or {}).get("metrics") or []
    labels = [r for r in rows if r.get("kind") == "label" and str(r.get("target")) != "0"]
    chosen = labels or [r for r in rows if r.get("kind") == "region"]
    per_case: dict[str, list[float]] = {}
    for row in chosen:
        values = per_case.setdefault(str(row["case"]), [])
        dice = row.get("dice")
        if dice is not None and math.isfinite(float(dice)):
            values.append(float(dice))
    return {case: (sum(v) / len(v) if v else None) for case, v in per_case.items()}


def remove_bulky_files(trial_dir: Path) -> None:
    """Delete a trial's preprocessed data, checkpoints and validation predictions; keep its
    plans, heuristics, logs, curves and summaries."""
    for folder in trial_dir.glob("*/preprocessed"):
        shutil.rmtree(folder, ignore_errors=True)
    for pattern in ("*/results/*/*/*.pt", "*/results/*/*/validation/*.npz"):
        for path in trial_dir.glob(pattern):
            path.unlink(missing_ok=True)
    for path in trial_dir.glob("*/results/*/*/validation/*.nii.gz"):
        path.unlink(missing_ok=True)
