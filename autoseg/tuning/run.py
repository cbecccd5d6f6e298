"""``autoseg tune``: prepare the datasets, create or join the study, run trials; ``--show``.

Layout under the workspace::

    <work>/tuning.sqlite3                          default Optuna storage
    <work>/tuning/datasets/<dataset>/              verify, source, fingerprint, splits (shared)
    <work>/tuning/studies/<study>/trial_<n>/       heuristics.json, <dataset>/ (plans, results)
    <work>/tuning/studies/<study>/best_heuristics.json, trials.csv, *.png   (--show)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch

from autoseg.data.formats import load_dataset
from autoseg.errors import ConfigError
from autoseg.log import get_logger
from autoseg.planner.heuristics import load_heuristics
from autoseg.planner.search_space import default_params
from autoseg.tuning.datasets import prepare_datasets
from autoseg.tuning.objective import TrialContext, TrialObjective
from autoseg.tuning.report import StudyOverview, show_study
from autoseg.tuning.request import TuneRequest
from autoseg.tuning.storage import default_storage_url, open_storage, redact_url
from autoseg.tuning.study import default_study_name, make_pruner, open_study, study_folder_name
from autoseg.tuning.worker import TrialOutcome, fail_stale_trials, run_worker
from autoseg.workspace import Workspace

__all__ = ["TuneReport", "format_tune_report", "run_show", "run_tune", "study_dir"]

_log = get_logger(__name__)


@dataclass(frozen=True)
class TuneReport:
    """What one ``autoseg tune`` worker did, and where the study stands.

    Attributes:
        study_name: The study.
        storage: Its storage URL (password masked).
        study_dir: ``<work>/tuning/studies/<study>/``.
        target_trials: ``--trials``: finished trials the study should hold.
        outcomes: The trials this worker ran.
        counts: Trials per state name in the whole study.
        best_number / best_value: The best completed trial so far (None if none).
    """

    study_name: str
    storage: str
    study_dir: Path
    target_trials: int
    outcomes: tuple[TrialOutcome, ...]
    counts: dict[str, int]
    best_number: int | None
    best_value: float | None


def study_dir(workspace: Workspace, study_name: str) -> Path:
    """``<work>/tuning/studies/<study>/``."""
    return workspace.root / "tuning" / "studies" / study_folder_name(study_name)


def _resolve_device(request: TuneRequest) -> str:
    available = torch.cuda.is_available()
    if request.device == "cuda" and not available:
        raise ConfigError("--device cuda was requested but no CUDA device is available")
    device = request.device or ("cuda" if available else "cpu")
    if request.gpu_memory_bytes is not None and device != "cuda":
        raise ConfigError("--gpu-memory needs training on a GPU (--device cuda); none is in use")
    return device


def _storage_url(workspace: Workspace, storage: str | None) -> str:
    return storage if storage else default_storage_url(workspace)


def run_tune(workspace: Workspace, request: TuneRequest) -> TuneReport:
    """Tune the planner heuristics on ``request.datasets`` (see the module docstring).

    Raises:
        ConfigError: invalid options, an unusable storage URL, a study created with other
            settings, base heuristics outside the search space.
        DatasetError: if a dataset cannot be read or fails verification.
    """
    device = _resolve_device(request)
    base = load_heuristics(request.base_heuristics)
    try:
        defaults = default_params(on_cpu=device == "cpu", base=base, configs=request.configs)
    except ValueError as err:
        raise ConfigError(f"base heuristics: {err}", path=request.base_heuristics) from None
    url = _storage_url(workspace, request.storage)
    storage = open_storage(url, heartbeat_seconds=request.heartbeat_seconds)
    datasets = prepare_datasets(
        request.datasets, workspace.root / "tuning", num_workers=request.num_workers
    )
    names = [d.name for d in datasets]
    name = request.study_name or default_study_name(names)
    settings = request.study_settings(names, device == "cpu", base.to_dict())
    study = open_study(storage, name, settings, defaults)
    study.pruner = make_pruner(
        request.pruner,
        startup_trials=request.pruner_startup_trials,
        warmup_percent=request.pruner_warmup_percent,
    )
    folder = study_dir(workspace, name)
    context = TrialContext(request, tuple(datasets), folder, device, base)
    outcomes = run_worker(
        study,
        storage,
        TrialObjective(context),
        trials=request.trials,
        seed=request.seed,
        heartbeat_seconds=request.heartbeat_seconds,
    )
    return _report(study, redact_url(url), folder, request.trials, outcomes)


def _report(
    study: optuna.Study,
    storage: str,
    folder: Path,
    target: int,
    outcomes: Sequence[TrialOutcome],
) -> TuneReport:
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value if t.value is not None else -math.inf, default=None)
    return TuneReport(
        study.study_name,
        storage,
        folder,
        target,
        tuple(outcomes),
        dict(Counter(t.state.name for t in trials)),
        best.number if best is not None else None,
        float(best.value) if best is not None and best.value is not None else None,
    )


def format_tune_report(report: TuneReport) -> str:
    """A few lines: the trials this worker ran, the study's state, where things are."""
    lines = [f"study {report.study_name!r} in {report.storage}"]
    for outcome in report.outcomes:
        value = f"{outcome.value:.4f}" if outcome.value is not None else "-"
        why = f"  ({outcome.reason})" if outcome.reason else ""
        lines.append(f"  trial {outcome.number:>3}  {outcome.state:<8} {value}{why}")
    if not report.outcomes:
        lines.append("  no trial run: the study already holds the requested trials")
    finished = sum(report.counts.get(s, 0) for s in ("COMPLETE", "PRUNED", "FAIL"))
    lines.append(
        f"finished trials: {finished} of {report.target_trials} "
        f"({', '.join(f'{n} {s.lower()}' for s, n in sorted(report.counts.items()))})"
    )
    if report.best_number is not None and report.best_value is not None:
        lines.append(f"best so far: trial {report.best_number}, value {report.best_value:.4f}")
    lines.append(f"trial folders: {report.study_dir}")
    lines.append("see the results: autoseg tune --show (with the same DATASETs or --study)")
    return "\n".join(lines)


def run_show(
    workspace: Workspace,
    *,
    datasets: Sequence[Path] = (),
    storage: str | None = None,
    study_name: str | None = None,
    heartbeat_seconds: int = 60,
) -> StudyOverview:
    """Load the study (by name, by its datasets' names, or the storage's only study) and
    write its report files (see :func:`autoseg.tuning.report.show_study`).

    Raises:
        ConfigError: an unusable storage, or no such study (listing the ones there are).
    """
    url = _storage_url(workspace, storage)
    rdb = open_storage(url, heartbeat_seconds=heartbeat_seconds)
    existing = optuna.study.get_all_study_names(storage=rdb)
    if study_name is None and datasets:
        study_name = default_study_name([load_dataset(Path(p)).name for p in datasets])
    if study_name is None:
        if len(existing) != 1:
            raise ConfigError(
                f"name the study with --study or give its DATASETs; the storage "
                f"{redact_url(url)} holds {existing or 'no studies'}"
            )
        study_name = existing[0]
    if study_name not in existing:
        raise ConfigError(
            f"no study {study_name!r} in {redact_url(url)}; it holds {existing or 'no studies'}"
        )
    study = optuna.load_study(study_name=study_name, storage=rdb)
    fail_stale_trials(study)
    return show_study(study, redact_url(url), study_dir(workspace, study_name))
