"""``autoseg train``: train the planned configurations on the requested folds of the split.

Reads plans.json and source.json (written by ``autoseg plan``), the dataset they point to
(patient groups, fixed validation sets and the reference labels of the final validation) and
the preprocessed cases' properties (classes present, for the stratified split); makes, reuses
or honours ``splits.json`` (:mod:`autoseg.trainers.splits`); then trains every
(configuration, fold) in turn, by default every fold of the split, with
:func:`autoseg.trainers.loop.train_fold`.
Under ``torchrun`` every process runs this, joining one process group for all the folds
(trained one after the other with every rank; see :mod:`autoseg.trainers.distributed`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from autoseg.artefacts import read_json
from autoseg.data.dataset import Dataset
from autoseg.data.formats import load_dataset
from autoseg.errors import ConfigError, PlansError
from autoseg.log import get_logger
from autoseg.planner.plans import Plans, load_plans
from autoseg.preprocessing.store import check_preprocessed
from autoseg.strict import choice_error
from autoseg.trainers.config import TrainingRequest
from autoseg.trainers.distributed import DistContext, distributed
from autoseg.trainers.loop import EpochCallback, FoldResult, train_fold
from autoseg.trainers.previous_stage import (
    missing_stage_folds,
    prepare_previous_stage,
    stage_folds_error,
)
from autoseg.trainers.session import FoldSpec
from autoseg.trainers.splits import Splits, load_or_make_splits
from autoseg.workspace import Workspace

__all__ = ["TrainingRequest", "format_results", "load_source_dataset", "run_training"]

_log = get_logger(__name__)


def load_source_dataset(workspace: Workspace) -> Dataset:
    """The dataset the workspace was planned from (source.json).

    Raises:
        PlansError: if source.json is missing or malformed (run ``autoseg plan`` first).
        DatasetError: if the dataset cannot be loaded from the recorded path any more.
    """
    source = read_json(workspace.source_json)
    if not isinstance(source, dict) or "dataset" not in source:
        raise PlansError(
            "source.json missing or malformed; run 'autoseg plan DATASET' first",
            path=workspace.source_json,
        )
    return load_dataset(Path(source["dataset"]))


def _configuration_names(plans: Plans, requested: Sequence[str]) -> list[str]:
    """The requested configurations in the plan's order (a cascade's first stage first)."""
    if list(requested) == ["all"]:
        return list(plans.configurations)
    for name in requested:
        why = plans.not_planned(name)
        if why is not None:
            raise ConfigError(f"{why}; planned: {', '.join(plans.configurations)}")
        if name not in plans.configurations:
            raise choice_error("configuration", name, [*plans.configurations, "all"])
    return [name for name in plans.configurations if name in requested]


def _classes_present(data_dir: Path, case_ids: Sequence[str]) -> dict[str, tuple[int, ...]]:
    classes = {}
    for case_id in case_ids:
        properties = read_json(data_dir / f"{case_id}.json")
        if not isinstance(properties, dict):
            raise PlansError(
                f"preprocessed case {case_id!r} is missing; re-run 'autoseg plan'", path=data_dir
            )
        classes[case_id] = tuple(int(v) for v in properties.get("classes_present", ()))
    return classes


def _splits(workspace: Workspace, dataset: Dataset, data_dir: Path, case_ids: list[str]) -> Splits:
    groups = {c.case_id: c.group for c in dataset.cases}
    classes = _classes_present(data_dir, case_ids)
    return load_or_make_splits(
        workspace.splits_json,
        case_ids,
        groups=groups,
        classes=classes,
        fixed=dataset.validation_folds,
    )


def _fold_cases(
    splits: Splits | None, case_ids: Sequence[str], fold: int | str
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Training and validation cases of ``fold`` ("all": every case in both)."""
    if fold == "all" or splits is None:
        return tuple(case_ids), tuple(case_ids)
    chosen = splits.fold(fold)
    return chosen.train, chosen.val


def run_training(
    workspace: Workspace, request: TrainingRequest, *, on_epoch: EpochCallback | None = None
) -> list[FoldResult]:
    """Train every requested (configuration, fold); return what each did.

    ``on_epoch`` is called after every epoch of every fold (see
    :data:`autoseg.trainers.loop.EpochCallback`); ``autoseg tune`` reports and prunes with it.
    Under torchrun, ranks other than 0 return an empty list (rank 0 reports).

    Raises:
        PlansError: before ``autoseg plan`` (suggesting it), or with incomplete preprocessing.
        ConfigError: an unknown configuration (listing the planned ones), --pretrained with
            several configurations, an unfinished fold without --resume/--overwrite.
        CheckpointError: a corrupted checkpoint (naming the file).
        DatasetError: too few cases for the split, or the dataset is gone.
        DistributedError: under torchrun, when the process group cannot be joined or another
            process fails or times out.
    """
    with distributed(request.config.device) as dist:
        results = _train_all(workspace, request, on_epoch, dist)
    return results if dist.is_main else []


def _train_all(
    workspace: Workspace,
    request: TrainingRequest,
    on_epoch: EpochCallback | None,
    dist: DistContext,
) -> list[FoldResult]:
    plans = load_plans(workspace.plans_json)
    names = _configuration_names(plans, request.configs)
    if request.pretrained is not None and len(names) != 1:
        raise ConfigError(
            f"--pretrained initialises one configuration's network; choose one with --config "
            f"(planned: {', '.join(plans.configurations)})"
        )
    dataset = load_source_dataset(workspace)
    case_ids = sorted(c.case_id for c in dataset.cases)
    numbered = not request.folds or any(f != "all" for f in request.folds)
    splits: dict[str, Splits | None] = {}
    for name in names:
        plan = plans.configuration(name)
        splits[name] = None
        if numbered or plan.previous_stage is not None:  # a cascade needs the split's OOF
            data_dir = workspace.preprocessed_dir(plan.data_identifier)
            with dist.main_first("writing splits.json"):
                splits[name] = _splits(workspace, dataset, data_dir, case_ids)
    _check_first_stages(workspace, plans, names, request, splits, case_ids)
    results = []
    for name in names:  # every input checked before any fold folder is touched
        check_preprocessed(
            workspace.preprocessed_dir(plans.configuration(name).data_identifier), case_ids
        )
    for name in names:
        data_dir = workspace.preprocessed_dir(plans.configuration(name).data_identifier)
        split = splits[name]
        folds = request.folds or tuple(range(split.num_folds if split else 0))
        for fold in folds:
            train_ids, val_ids = _fold_cases(split if numbered else None, case_ids, fold)
            if split is not None and plans.configuration(name).previous_stage is not None:
                with dist.main_first("preparing the first stage's out-of-fold inputs"):
                    needed = sorted(set(train_ids) | set(val_ids))
                    prepare_previous_stage(workspace, plans, name, split, needed)
            spec = FoldSpec(plans, name, fold, train_ids, val_ids, workspace)
            _log.info(
                "training %s fold %s: %d training / %d validation cases",
                name,
                fold,
                len(train_ids),
                len(val_ids),
            )
            results.append(
                train_fold(
                    spec,
                    request.config,
                    dataset,
                    resume=request.resume,
                    overwrite=request.overwrite,
                    pretrained=request.pretrained,
                    on_epoch=on_epoch,
                    dist=dist,
                    break_lock=request.break_lock,
                )
            )
    return results


def _check_first_stages(
    workspace: Workspace,
    plans: Plans,
    names: Sequence[str],
    request: TrainingRequest,
    splits: dict[str, Splits | None],
    case_ids: Sequence[str],
) -> None:
    """Refuse, before anything trains, a cascade whose first stage lacks folds that the
    cases of its requested folds need and that this run does not train first."""
    for name in names:
        stage, split = plans.configuration(name).previous_stage, splits[name]
        if stage is None or split is None:
            continue
        requested = request.folds or tuple(range(split.num_folds))
        needed: set[str] = set()
        for fold in requested:
            train_ids, val_ids = _fold_cases(split, case_ids, fold)
            needed |= set(train_ids) | set(val_ids)
        coming: list[int] = []
        if stage in names and names.index(stage) < names.index(name):
            coming = [f for f in requested if isinstance(f, int)]
        missing = missing_stage_folds(workspace, stage, split, sorted(needed), name, coming)
        if missing:
            raise stage_folds_error(stage, name, missing)


def format_results(results: Sequence[FoldResult]) -> str:
    """One line per trained fold: configuration, fold, what was done, epochs, validation Dice."""
    lines = [f"{'configuration':<14} {'fold':<5} {'status':<10} {'epochs':>6}  val Dice"]
    for r in results:
        dice = math.nan
        if r.summary and r.summary.get("summary"):
            dice = r.summary["summary"]["foreground_mean"]["dice"]
        epochs = "-" if r.epochs < 0 else str(r.epochs)
        shown = "-" if not math.isfinite(dice) else f"{dice:.4f}"
        lines.append(f"{r.config_name:<14} {r.fold!s:<5} {r.status:<10} {epochs:>6}  {shown}")
        lines.append(f"  {r.fold_dir}")
    return "\n".join(lines)
