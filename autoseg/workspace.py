"""Where every artefact of one dataset lives: a single root folder, passed explicitly.

Layout (see docs/artefacts.md)::

    <root>/
      source.json                     which dataset the workspace was planned from
      fingerprint.json                dataset fingerprint
      plans.json                      the plan: preprocessing + one entry per configuration
      preprocessed/<data_id>/         <case>.npy (float32 CZYX), <case>_seg.npy, <case>.json
      splits.json                     the 5-fold split of the training cases
      results/<config>/fold_<k>/      checkpoints, log.jsonl, progress.png, validation/
      results/<config>/cv_summary.*   cross-validation summary over the folds
      best.json                       find-best's choice
      tuning.sqlite3                  default Optuna storage of ``autoseg tune``
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_WORK_DIR", "Workspace", "resolve_work_dir"]

DEFAULT_WORK_DIR = Path("autoseg_work")


def resolve_work_dir(work: str | Path | None) -> Path:
    """The workspace root: ``work`` if given, else ``$AUTOSEG_WORK`` if set, else ./autoseg_work."""
    if work is not None:
        return Path(work)
    env = os.environ.get("AUTOSEG_WORK")
    return Path(env) if env else DEFAULT_WORK_DIR


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
    def fingerprint_json(self) -> Path:
        return self.root / "fingerprint.json"

    @property
    def plans_json(self) -> Path:
        return self.root / "plans.json"

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

    def fold_dir(self, config: str, fold: int | str) -> Path:
        """``results/<config>/fold_<k>`` (``fold_all`` for training on every case)."""
        return self.config_dir(config) / f"fold_{fold}"
