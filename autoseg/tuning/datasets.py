"""The datasets of a tuning run: verified and fingerprinted once, shared by every trial.

The fingerprint does not depend on the heuristics, so each dataset gets one base workspace,
``<work>/tuning/datasets/<name>/`` (verify.json, source.json, fingerprint.json and, after the
first trial, splits.json). A trial's workspace starts as a copy of those files, so only
planning, preprocessing and training run per trial, and every trial uses the same folds.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from autoseg.atomic import atomic_path
from autoseg.data.formats import load_dataset
from autoseg.log import get_logger
from autoseg.planner.workflow import prepare_dataset
from autoseg.workspace import Workspace

__all__ = [
    "BASE_FILES",
    "PreparedDataset",
    "prepare_datasets",
    "seed_trial_workspace",
    "share_cpu_speed",
    "share_splits",
]

BASE_FILES = (
    "verify.json",
    "source.json",
    "fingerprint.json",
    "splits.json",
    "cpu_speed.json",
)
_log = get_logger(__name__)


@dataclass(frozen=True)
class PreparedDataset:
    """A dataset ready for trials.

    Attributes:
        name: The dataset's name (dataset.json ``name``, or its folder).
        folder: Unique, file-system-safe folder name of the dataset within a trial.
        path: The dataset folder or CSV manifest.
        base: Its base workspace (verify, source, fingerprint, splits).
    """

    name: str
    folder: str
    path: Path
    base: Workspace


def _folder_names(names: Sequence[str]) -> list[str]:
    folders: list[str] = []
    for name in names:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "dataset"
        folder, k = stem, 2
        while folder in folders:
            folder, k = f"{stem}-{k}", k + 1
        folders.append(folder)
    return folders


def prepare_datasets(
    paths: Sequence[Path], tuning_root: Path, *, num_workers: int = 1
) -> list[PreparedDataset]:
    """Verify and fingerprint each dataset into its base workspace (skipped when current).

    Args:
        paths: Dataset folders or CSV manifests.
        tuning_root: ``<work>/tuning``.
        num_workers: Processes for verifying and fingerprinting.

    Raises:
        DatasetError: if a dataset cannot be read or has problems.
    """
    datasets = [load_dataset(Path(p)) for p in paths]
    folders = _folder_names([d.name for d in datasets])
    prepared = []
    for path, dataset, folder in zip(paths, datasets, folders):
        base = Workspace(tuning_root / "datasets" / folder)
        base.root.mkdir(parents=True, exist_ok=True)
        _, _, reused = prepare_dataset(Path(path), base, num_workers=num_workers)
        _log.info("dataset %s: fingerprint %s", dataset.name, "reused" if reused else "computed")
        prepared.append(PreparedDataset(dataset.name, folder, Path(path), base))
    return prepared


def seed_trial_workspace(dataset: PreparedDataset, workspace: Workspace) -> None:
    """Copy the base files that exist into a fresh trial workspace."""
    workspace.root.mkdir(parents=True, exist_ok=True)
    for name in BASE_FILES:
        source = dataset.base.root / name
        if source.is_file():
            shutil.copy2(source, workspace.root / name)


def share_splits(dataset: PreparedDataset, workspace: Workspace) -> None:
    """Keep the first trial's splits.json in the base workspace, for every later trial."""
    _share(workspace.splits_json, dataset.base.splits_json)


def share_cpu_speed(dataset: PreparedDataset, workspace: Workspace) -> None:
    """Keep the first trial's measured CPU speed in the base workspace, so every later trial
    plans with the same measurement instead of measuring again."""
    _share(workspace.cpu_speed_json, dataset.base.cpu_speed_json)


def _share(source: Path, target: Path) -> None:
    if source.is_file() and not target.is_file():
        with atomic_path(target) as tmp:
            shutil.copy2(source, tmp)
