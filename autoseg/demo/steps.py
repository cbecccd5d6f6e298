"""The steps of ``autoseg demo``, each a call of the library function behind one subcommand.

plan (``autoseg plan``) -> splits (``splits.json`` with the demo's number of folds) -> train
(``autoseg train``, every planned configuration and fold) -> find-best -> predict the
held-out ``imagesTs`` with ``--config best`` -> evaluate against ``labelsTs`` -> overlay
(``autoseg show``). Each step skips its work when its outputs are current, as the
subcommands do; :func:`reset_stale_results` removes results made with other settings or data
(training itself only checks that a fold finished, not with what).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoseg.artefacts import content_digest, is_current, read_json, text_digest
from autoseg.atomic import atomic_write_json
from autoseg.data.formats import load_dataset
from autoseg.demo.settings import DemoSettings
from autoseg.ensembling import find_best
from autoseg.ensembling.best_choice import BestChoice
from autoseg.errors import ConfigError, InputError
from autoseg.evaluation import evaluate_and_write
from autoseg.inference.batch_prediction import PredictCommand, PredictionReport, run_prediction
from autoseg.log import get_logger
from autoseg.planner.plans import Plans
from autoseg.planner.workflow import PlanReport, run_plan
from autoseg.trainers.config import TrainingRequest
from autoseg.trainers.cross_validation import run_training
from autoseg.trainers.loop import FoldResult
from autoseg.trainers.splits import Splits, load_or_make_splits, make_splits
from autoseg.viz.overlays import OverlayLayout, render_overlay
from autoseg.workspace import Workspace

__all__ = [
    "DemoPaths",
    "check_workspace",
    "evaluate_step",
    "find_best_step",
    "overlay_step",
    "plan_step",
    "predict_step",
    "reset_stale_results",
    "splits_step",
    "train_step",
]

_log = get_logger(__name__)


@dataclass(frozen=True)
class DemoPaths:
    """Where the demo writes, besides the workspace's own artefacts."""

    workspace: Workspace

    @property
    def data(self) -> Path:
        return self.workspace.root / "demo_data"

    @property
    def heuristics(self) -> Path:
        return self.workspace.root / "demo_heuristics.json"

    @property
    def marker(self) -> Path:
        """``demo.json``: the settings and inputs the results in the workspace belong to."""
        return self.workspace.root / "demo.json"

    @property
    def predictions(self) -> Path:
        return self.workspace.root / "demo_predictions"

    @property
    def evaluation(self) -> Path:
        return self.workspace.root / "demo_evaluation"

    def overlay(self, case_id: str) -> Path:
        return self.workspace.root / f"demo_overlay_{case_id}.png"


def check_workspace(paths: DemoPaths) -> None:
    """Refuse a workspace planned from another dataset (the demo would replace its plan).

    Raises:
        ConfigError: if ``source.json`` points elsewhere than ``<work>/demo_data``.
    """
    source = read_json(paths.workspace.source_json)
    if not isinstance(source, dict) or "dataset" not in source:
        return
    if Path(str(source["dataset"])).resolve() != paths.data.resolve():
        raise ConfigError(
            f"this workspace holds the plan of another dataset ({source['dataset']}); run the "
            "demo in an empty or demo-only --work folder",
            path=paths.workspace.root,
        )


def plan_step(paths: DemoPaths, settings: DemoSettings) -> PlanReport:
    """``autoseg plan <work>/demo_data --heuristics <work>/demo_heuristics.json``."""
    overrides = settings.heuristics_json()
    if read_json(paths.heuristics) != overrides:
        atomic_write_json(paths.heuristics, overrides)
    return run_plan(paths.data, paths.workspace, heuristics_path=paths.heuristics)


def splits_step(paths: DemoPaths, plans: Plans, num_folds: int) -> Splits:
    """Write (or reuse) a ``num_folds``-fold ``splits.json``, made as ``autoseg train`` makes
    its 5-fold one (grouped by patient, stratified by class); training then reuses it."""
    dataset = load_dataset(paths.data)
    case_ids = sorted(c.case_id for c in dataset.cases)
    groups = {c.case_id: c.group for c in dataset.cases}
    data_dir = paths.workspace.preprocessed_dir(
        next(iter(plans.configurations.values())).data_identifier
    )
    classes = {}
    for case_id in case_ids:
        properties = read_json(data_dir / f"{case_id}.json") or {}
        classes[case_id] = tuple(int(v) for v in properties.get("classes_present", ()))
    existing = read_json(paths.workspace.splits_json)
    if isinstance(existing, dict) and existing.get("num_folds") != num_folds:
        splits = make_splits(case_ids, groups=groups, classes=classes, num_folds=num_folds)
        atomic_write_json(paths.workspace.splits_json, splits.to_dict())
        return Splits.from_dict(splits.to_dict())
    return load_or_make_splits(
        paths.workspace.splits_json, case_ids, groups=groups, classes=classes, num_folds=num_folds
    )


def reset_stale_results(paths: DemoPaths, settings: DemoSettings) -> bool:
    """Remove the results of other settings or data; record the current ones in demo.json.

    Results (``results/``, ``best.json``, predictions, evaluation, overlays) belong to the
    settings, plans and split recorded in ``demo.json``. When those differ from the current
    ones, the results are removed so every later step recomputes them. Returns True then.
    """
    ws = paths.workspace
    inputs = {
        "settings": text_digest(settings.digest_text()),
        "plans": content_digest(ws.plans_json),
        "splits": content_digest(ws.splits_json),
    }
    if is_current(paths.marker, inputs):
        return False
    stale = [ws.results_dir, ws.best_json, paths.predictions, paths.evaluation]
    stale += sorted(ws.root.glob("demo_overlay_*.png"))
    for path in stale:
        if path.is_dir():
            _log.info("removing %s (made with other settings or data)", path)
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    atomic_write_json(paths.marker, {"settings": settings.to_dict(), "inputs": inputs})
    return True


def train_step(paths: DemoPaths, settings: DemoSettings) -> list[FoldResult]:
    """``autoseg train fold=0..k-1`` for every planned configuration (resuming unfinished
    folds, skipping finished ones)."""
    folds: tuple[int | str, ...] = tuple(range(settings.num_folds))
    request = TrainingRequest(configs=("all",), folds=folds, config=settings.train, resume=True)
    return run_training(paths.workspace, request)


def find_best_step(paths: DemoPaths, seed: int) -> BestChoice:
    """``autoseg find-best`` over every trained configuration and their ensemble."""
    return find_best(paths.workspace, None, metric="dice", seed=seed)


def predict_step(paths: DemoPaths, settings: DemoSettings) -> PredictionReport:
    """``autoseg predict -i demo_data/imagesTs -o demo_predictions --config best``.

    Raises:
        InputError: if a held-out case failed (the report names it).
    """
    report = run_prediction(
        PredictCommand(
            inputs=(paths.data / "imagesTs",),
            output=paths.predictions,
            workspace=paths.workspace,
            config="best",
            use_mirroring=settings.use_mirroring,
            threads=settings.train.threads,  # as in training: one thread on a 2-core CPU
        )
    )
    if report.failed:
        raise InputError(
            f"prediction failed for {len(report.failed)} held-out case(s): "
            + "; ".join(report.failed.values()),
            path=paths.predictions,
        )
    return report


def evaluate_step(paths: DemoPaths) -> dict[str, Any]:
    """``autoseg evaluate demo_predictions demo_data/labelsTs --out demo_evaluation``."""
    return evaluate_and_write(
        paths.predictions,
        paths.data / "labelsTs",
        dataset_json=paths.data / "dataset.json",
        out_dir=paths.evaluation,
    )


def overlay_step(
    paths: DemoPaths, case_id: str, file_ending: str, label_names: dict[int, str]
) -> OverlayLayout:
    """``autoseg show`` of one held-out case: its first channel, prediction and reference."""
    return render_overlay(
        paths.data / "imagesTs" / f"{case_id}_0000{file_ending}",
        paths.overlay(case_id),
        seg=paths.predictions / f"{case_id}{file_ending}",
        ref=paths.data / "labelsTs" / f"{case_id}{file_ending}",
        label_names=label_names,
    )
