"""Where every artefact of one dataset lives: a single root folder, passed explicitly.

Layout (see docs/artefacts.md)::

    <root>/
      source.json                     which dataset the workspace was planned from
      verify.json                     per-case verification results (reused while unchanged)
      fingerprint.json                dataset fingerprint
      plans.json                      the plan: preprocessing + one entry per configuration
      cpu_speed.json                  this machine's measured CPU training speed (CPU plans)
      preprocessed/<data_id>/         <case>.npy (float32 CZYX), <case>_seg.npy, <case>.json
      splits.json                     the folds (autoseg makes NUM_FOLDS; a user's: any number)
      results/<config>/fold_<k>/      one fold (k in 0..4, or ``all``): see FoldPaths
      results/<config>/cv_summary.*   cross-validation summary over the folds
      best.json                       find-best's choice
      tuning.sqlite3                  default Optuna storage of ``autoseg tune``
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CHECKPOINT_NAMES",
    "DEFAULT_WORK_DIR",
    "FOLD_NAMES",
    "NUM_FOLDS",
    "FoldPaths",
    "Workspace",
    "resolve_work_dir",
]

DEFAULT_WORK_DIR = Path("autoseg_work")
NUM_FOLDS = 5
"""Folds of the cross-validation split (``splits.json``), numbered 0 .. NUM_FOLDS - 1."""
FOLD_NAMES: tuple[int | str, ...] = (*range(NUM_FOLDS), "all")
"""Fold folders looked for, in order (``fold_all``: trained on every case)."""
CHECKPOINT_NAMES = ("latest", "best", "final")
"""``checkpoint_<name>.pt`` of a fold: after every epoch, at the best smoothed pseudo-Dice,
and when training finished."""


def resolve_work_dir(work: str | Path | None) -> Path:
    """The workspace root: ``work`` if given, else ``$AUTOSEG_WORK`` if set, else ./autoseg_work."""
    if work is not None:
        return Path(work)
    env = os.environ.get("AUTOSEG_WORK")
    return Path(env) if env else DEFAULT_WORK_DIR


@dataclass(frozen=True)
class FoldPaths:
    """The files of one fold folder, ``results/<config>/fold_<k>/`` (see docs/artefacts.md).

    Attributes:
        root: The fold folder.
    """

    root: Path

    def checkpoint(self, name: str) -> Path:
        """``checkpoint_<name>.pt``, ``name`` one of :data:`CHECKPOINT_NAMES`."""
        return self.root / f"checkpoint_{name}.pt"

    @property
    def log(self) -> Path:
        """``log.jsonl``: one JSON object per epoch."""
        return self.root / "log.jsonl"

    @property
    def lock(self) -> Path:
        """``train.lock``: who trains the fold now (see :mod:`autoseg.locking`)."""
        return self.root / "train.lock"

    @property
    def progress_png(self) -> Path:
        return self.root / "progress.png"

    @property
    def train_config(self) -> Path:
        return self.root / "train_config.json"

    @property
    def validation(self) -> Path:
        """``validation/``: the final validation's label maps, probabilities and summary."""
        return self.root / "validation"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"


@dataclass(frozen=True)
class Workspace:
    """Paths of every artefact under one root folder. Creating it touches no file."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def source_json(self) -> Path:
        return self.root / "source.json"

    @property
    def verify_json(self) -> Path:
        """Per-case verification results, reused while a case's files are unchanged."""
        return self.root / "verify.json"

    @property
    def fingerprint_json(self) -> Path:
        return self.root / "fingerprint.json"

    @property
    def plans_json(self) -> Path:
        return self.root / "plans.json"

    @property
    def cpu_speed_json(self) -> Path:
        """This machine's measured CPU training speed (reused by later plans on it)."""
        return self.root / "cpu_speed.json"

    @property
    def splits_json(self) -> Path:
        return self.root / "splits.json"

    @property
    def best_json(self) -> Path:
        return self.root / "best.json"

    @property
    def tuning_db(self) -> Path:
        return self.root / "tuning.sqlite3"

    @property
    def results_dir(self) -> Path:
        return self.root / "results"

    def preprocessed_dir(self, data_id: str) -> Path:
        """Folder of the preprocessed cases for one data identifier (spacing + normalisation)."""
        return self.root / "preprocessed" / data_id

    def config_dir(self, config: str) -> Path:
        return self.results_dir / config

    def stage_dir(self, config: str) -> Path:
        """``results/<config>/previous_stage``: a cascade's first-stage input of every case
        (the first stage's out-of-fold predictions on the cascade's grid)."""
        return self.config_dir(config) / "previous_stage"

    def fold_dir(self, config: str, fold: int | str) -> Path:
        """``results/<config>/fold_<k>`` (``fold_all`` for training on every case)."""
        return self.config_dir(config) / f"fold_{fold}"

    def fold_paths(self, config: str, fold: int | str) -> FoldPaths:
        """The files of ``results/<config>/fold_<k>``."""
        return FoldPaths(self.fold_dir(config, fold))

    def checkpoint_path(self, config: str, fold: int | str, name: str) -> Path:
        """``results/<config>/fold_<k>/checkpoint_<name>.pt``."""
        return self.fold_paths(config, fold).checkpoint(name)

    def numbered_fold_dirs(self, config: str) -> list[Path]:
        """Existing ``results/<config>/fold_<k>`` folders with a number ``k`` (not ``all``),
        sorted."""
        root = self.config_dir(config)
        if not root.is_dir():
            return []
        return sorted(p for p in root.glob("fold_*") if p.name[len("fold_") :].isdigit())
