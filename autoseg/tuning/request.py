"""TuneRequest: what ``autoseg tune`` was asked to do, validated once at the boundary.

A study's objective is only comparable between trials that train the same things for the
same length, so :meth:`TuneRequest.study_settings` (datasets, configurations, folds, length,
device kind, base heuristics) is recorded in the study and checked by every worker that
joins it; worker-local knobs (pruner, trials, seed, processes) may differ between workers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoseg.errors import ConfigError
from autoseg.planner.planner import CONFIGURATIONS
from autoseg.strict import choice_error
from autoseg.workspace import NUM_FOLDS

__all__ = ["DEFAULT_BUDGET_MINUTES", "PRUNERS", "TUNABLE_CONFIGURATIONS", "TuneRequest"]

TUNABLE_CONFIGURATIONS = tuple(c for c in CONFIGURATIONS if c != "unet3d_cascade")
"""What a trial may train: the cascade needs every fold of its first stage first, while a
trial trains only ``folds``."""

PRUNERS = ("median", "halving", "hyperband", "none")
DEFAULT_BUDGET_MINUTES = 30.0
"""Training minutes per trial when neither a budget nor --epochs is given."""


@dataclass(frozen=True)
class TuneRequest:
    """Options of one ``autoseg tune`` worker.

    Attributes:
        datasets: Dataset folders (or CSV manifests), at least one.
        trials: Run until the study holds this many finished (complete, pruned or failed)
            trials; re-running resumes rather than adding more.
        budget_minutes: Training wall-clock minutes per trial, split evenly over the
            (dataset, configuration, fold) units; None with ``epochs`` unset means
            :data:`DEFAULT_BUDGET_MINUTES`. Planning and preprocessing are not counted.
        epochs / iters_per_epoch / val_iters: A fixed length per unit instead of a budget.
        storage: SQLAlchemy URL of the Optuna storage; None = ``sqlite:///<work>/tuning.sqlite3``.
        study_name: None = derived from the dataset names.
        configs: Configurations trained per dataset (default "unet3d", "deepmedic"; any of
            :data:`TUNABLE_CONFIGURATIONS`; one a trial's heuristics did not plan is left
            out of that trial).
        folds: Cross-validation folds trained per configuration (0..4).
        pruner: "median", "halving", "hyperband" or "none".
        pruner_startup_trials: Completed trials before the median pruner prunes.
        pruner_warmup_percent: Percent of a trial's training never pruned (the median
            pruner's warm-up; the first rung of halving and hyperband).
        seed: Seed of the sampler (per trial, from the trial number) and of training.
        device: "cuda", "cpu", or None for CUDA when available.
        gpu_memory_bytes: Plan for this much GPU memory instead of the detected amount.
        base_heuristics: JSON of the heuristics that are not tuned (default: the defaults).
        num_workers: Processes for fingerprinting and preprocessing.
        loader_workers: Data-loading processes while training (None: from the CPU count).
        threads: Torch CPU threads while training (None: torch's default).
        heartbeat_seconds: Heartbeat interval of running trials; a trial silent for twice
            this long is marked failed by the next worker that looks.
        keep_trial_files: Keep each trial's preprocessed data, checkpoints and validation
            predictions (by default only plans, logs and summaries are kept).
    """

    datasets: tuple[Path, ...]
    trials: int = 20
    budget_minutes: float | None = None
    epochs: int | None = None
    iters_per_epoch: int | None = None
    val_iters: int | None = None
    storage: str | None = None
    study_name: str | None = None
    configs: tuple[str, ...] = ("unet3d", "deepmedic")
    folds: tuple[int, ...] = (0,)
    pruner: str = "median"
    pruner_startup_trials: int = 3
    pruner_warmup_percent: int = 25
    seed: int = 0
    device: str | None = None
    gpu_memory_bytes: int | None = None
    base_heuristics: Path | None = None
    num_workers: int = 2
    loader_workers: int | None = None
    threads: int | None = None
    heartbeat_seconds: int = 60
    keep_trial_files: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "datasets", tuple(Path(p) for p in self.datasets))
        object.__setattr__(self, "configs", tuple(dict.fromkeys(self.configs)))
        object.__setattr__(self, "folds", tuple(sorted({int(f) for f in self.folds})))
        if not self.datasets:
            raise ConfigError("give at least one DATASET to tune on")
        if not self.configs:
            raise ConfigError(
                f"give at least one configuration ({', '.join(TUNABLE_CONFIGURATIONS)})"
            )
        for name in self.configs:
            if name == "unet3d_cascade":
                raise ConfigError(
                    "unet3d_cascade cannot be tuned: it trains on every fold of "
                    "unet3d_lowres, and a trial trains only its --folds; tune unet3d_lowres"
                )
            if name not in TUNABLE_CONFIGURATIONS:
                raise choice_error("configuration", name, TUNABLE_CONFIGURATIONS)
        if not self.folds or any(not 0 <= f < NUM_FOLDS for f in self.folds):
            raise ConfigError(f"folds must be in 0..{NUM_FOLDS - 1}, got {list(self.folds)}")
        if self.pruner not in PRUNERS:
            raise choice_error("pruner", self.pruner, PRUNERS)
        if self.device not in (None, "cuda", "cpu"):
            raise choice_error("device", self.device, ("cuda", "cpu"))
        self._check_numbers()

    def _check_numbers(self) -> None:
        for name, minimum in (
            ("trials", 1),
            ("pruner_startup_trials", 0),
            ("pruner_warmup_percent", 0),
            ("num_workers", 1),
            ("heartbeat_seconds", 1),
            ("seed", 0),
        ):
            if int(getattr(self, name)) < minimum:
                raise ConfigError(f"{name} must be >= {minimum}, got {getattr(self, name)}")
        for name in ("epochs", "iters_per_epoch", "val_iters", "threads"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        if self.loader_workers is not None and self.loader_workers < 0:
            raise ConfigError(f"loader_workers must be >= 0, got {self.loader_workers}")
        if self.budget_minutes is not None:
            if not (math.isfinite(self.budget_minutes) and self.budget_minutes > 0):
                raise ConfigError(f"budget_minutes must be positive, got {self.budget_minutes}")
            if self.epochs is not None:
                raise ConfigError("give a time budget or --epochs, not both")

    @property
    def num_units(self) -> int:
        """Trainings per trial: datasets x configurations x folds."""
        return len(self.datasets) * len(self.configs) * len(self.folds)

    @property
    def unit_budget_seconds(self) -> float | None:
        """Wall-clock budget of one (dataset, configuration, fold) training, or None."""
        if self.epochs is not None:
            return None
        minutes = self.budget_minutes if self.budget_minutes is not None else DEFAULT_BUDGET_MINUTES
        return minutes * 60.0 / self.num_units

    def study_settings(
        self, dataset_names: list[str], on_cpu: bool, base: dict[str, Any]
    ) -> dict[str, Any]:
        """The settings every worker of one study must share (JSON-able)."""
        return {
            "datasets": list(dataset_names),
            "configs": list(self.configs),
            "folds": list(self.folds),
            "unit_budget_seconds": self.unit_budget_seconds,
            "epochs": self.epochs,
            "iters_per_epoch": self.iters_per_epoch,
            "val_iters": self.val_iters,
            "device": "cpu" if on_cpu else "gpu",
            "gpu_memory_bytes": self.gpu_memory_bytes,
            "base_heuristics": base,
        }
