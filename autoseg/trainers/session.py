"""Everything one fold's training holds: network, optimiser, schedule, loaders, state.

:func:`open_session` builds it from the plan and the TrainConfig, from a checkpoint when
resuming (weights, optimiser, schedule, grad scaler, RNG states, progress) or from
``--pretrained`` weights with a fresh optimiser. :meth:`Session.checkpoint_payload` is what
every checkpoint holds (see :mod:`autoseg.inference.checkpoint`). Under torchrun
(:mod:`autoseg.trainers.distributed`) the network is wrapped in DistributedDataParallel
(``network``; ``module`` stays the plain one, whose weights the checkpoints hold) and each
rank samples with its own seed.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from batchgenerators.dataloading.multi_threaded_augmenter import MultiThreadedAugmenter
from batchgenerators.dataloading.single_threaded_augmenter import SingleThreadedAugmenter

from autoseg.planner.plans import ConfigurationPlan, Plans
from autoseg.seeding import capture_rng_state
from autoseg.trainers.config import TrainConfig
from autoseg.trainers.cpu_threads import ThreadTuner
from autoseg.trainers.distributed import DistContext
from autoseg.trainers.losses import DeepSupervisionLoss, SegmentationLoss
from autoseg.trainers.optim import LRSchedule
from autoseg.trainers.state import TrainingState
from autoseg.trainers.strategy import LoaderSpec, TrainingStrategy
from autoseg.trainers.tensorboard import TensorBoardWriter
from autoseg.workspace import FoldPaths, Workspace

__all__ = [
    "BudgetTracker",
    "FoldSpec",
    "Session",
    "ValidationProbe",
]


ValidationProbe = Callable[[str], float]
"""Validate one case exactly as the final validation does (into a scratch folder) and
return the seconds it took."""


@dataclass
class BudgetTracker:
    """What the budget has measured during this run (not checkpointed: a resumed run
    measures again).

    Attributes:
        probe: Validates one case and returns its seconds (None: no final validation).
        probe_case: The case the probe validates; ``probe_case_seconds`` what it measured,
            and ``probe_voxels`` the output voxels of that case; ``case_voxels`` the same for
            every validation case.
        probe_iteration_seconds: The median iteration time when the probe ran.
        reprobed: Whether the probe has been repeated near the end of training.
        iteration_seconds: Median iteration time of each epoch of this run.
        closings: Validation batches + checkpoint of each epoch of this run; ``saves``, the
            checkpoints (and curves) alone.
        closing_seconds: What the next epoch's end is expected to take (the longest of the
            last three, with :data:`~autoseg.trainers.time_budget.RESERVE_MARGIN`).
        reserve_seconds: The current estimate of the final validation + last checkpoint.
        progress: The schedule's progress at the last iteration (it never goes back).
    """

    probe: ValidationProbe | None = None
    probe_case: str | None = None
    probe_case_seconds: float | None = None
    probe_voxels: int = 0
    case_voxels: dict[str, int] = field(default_factory=dict)
    probe_iteration_seconds: float = math.nan
    reprobed: bool = False
    iteration_seconds: list[float] = field(default_factory=list)
    closings: list[float] = field(default_factory=list)
    saves: list[float] = field(default_factory=list)
    closing_seconds: float = 0.0
    reserve_seconds: float = 0.0
    progress: float = 0.0

    def recent_iteration_seconds(self) -> float:
        """Median of the last three epochs' median iteration times (NaN before any)."""
        recent = self.iteration_seconds[-3:]
        return statistics.median(recent) if recent else math.nan

    def recent_save_seconds(self) -> float:
        """Median of the last three checkpoints' seconds (0 before any): one slow write on
        a busy moment does not move the end of training."""
        recent = self.saves[-3:]
        return statistics.median(recent) if recent else 0.0


@dataclass(frozen=True)
class FoldSpec:
    """What to train: one configuration of a plan on one fold's cases."""

    plans: Plans
    config_name: str
    fold: int | str
    train_ids: tuple[str, ...]
    val_ids: tuple[str, ...]
    workspace: Workspace

    @property
    def config_plan(self) -> ConfigurationPlan:
        return self.plans.configuration(self.config_name)

    @property
    def fold_dir(self) -> Path:
        return self.workspace.fold_dir(self.config_name, self.fold)

    @property
    def paths(self) -> FoldPaths:
        """The files of the fold folder."""
        return FoldPaths(self.fold_dir)

    @property
    def data_dir(self) -> Path:
        return self.workspace.preprocessed_dir(self.config_plan.data_identifier)

    @property
    def stage_dir(self) -> Path | None:
        """A cascade's first-stage inputs (``results/<config>/previous_stage``), else None."""
        if self.config_plan.previous_stage is None:
            return None
        return self.workspace.stage_dir(self.config_name)


@dataclass
class Session:
    """A fold's live training objects (see the module docstring)."""

    spec: FoldSpec
    config: TrainConfig
    resolved: dict[str, Any]
    strategy: TrainingStrategy
    device: torch.device
    amp: bool
    module: torch.nn.Module
    network: Any
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    scaler: torch.amp.GradScaler
    loss: DeepSupervisionLoss
    state: TrainingState
    train_batches: Iterator[dict[str, Any]] = field(default_factory=lambda: iter(()))
    val_batches: Iterator[dict[str, Any]] = field(default_factory=lambda: iter(()))
    writer: TensorBoardWriter | None = None
    dist: DistContext = field(default_factory=DistContext)
    clock: tuple[float, float] = (0.0, 0.0)
    save_seconds: float = 0.0
    budget: BudgetTracker = field(default_factory=BudgetTracker)
    plotted: tuple[float, int] = (-math.inf, 0)
    """When progress.png was last drawn (``time.perf_counter()``) and with how many epochs."""
    plot_seconds: float = 0.0
    """What drawing progress.png took last time (the reserve keeps room for the last one)."""
    threads: ThreadTuner | None = None
    """Chooses torch's thread count by measurement on a busy CPU (None: fixed)."""

    def elapsed(self) -> float:
        """Training time of the fold so far (seconds), over every resumed run."""
        return self.clock[0] + (time.perf_counter() - self.clock[1])

    @property
    def val_loss(self) -> SegmentationLoss:
        """The loss of the full-resolution output (validation batches, eval mode)."""
        return self.loss.loss

    def checkpoint_payload(self) -> dict[str, Any]:
        """The content of a checkpoint of the current state."""
        return {
            "model": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": capture_rng_state(),
            "state_json": self.state.to_json(),
            "plans_json": self.spec.plans.to_json(),
            "train_config_json": json.dumps(
                {"config": self.config.to_dict(), "resolved": self.resolved}
            ),
            "configuration": self.spec.config_name,
            "fold": str(self.spec.fold),
        }

    def start_loaders(self) -> None:
        """Start the batch iterators (worker seeds follow the run seed and epoch) and the
        TensorBoard writer."""
        self.close()
        if self.config.tensorboard and self.dist.is_main:
            self.writer = TensorBoardWriter(self.spec.paths.tensorboard)
        workers = int(self.resolved["num_workers"])
        plans, plan, data_dir = self.spec.plans, self.spec.config_plan, self.spec.data_dir
        train = self.strategy.train_loader(plans, plan, data_dir, self.spec.train_ids)
        val = self.strategy.val_loader(plans, plan, data_dir, self.spec.val_ids)
        self.train_batches = self._batches(train, workers, stream=0)
        self.val_batches = self._batches(val, max(1, workers // 2) if workers else 0, stream=1)

    def _batches(self, spec: LoaderSpec, workers: int, stream: int) -> Iterator[dict[str, Any]]:
        if workers == 0:
            return SingleThreadedAugmenter(spec.sampler, spec.transforms)  # type: ignore[no-any-return]
        entropy = [self.dist.seed(self.config.seed), self.state.epoch, stream]
        seeds = np.random.SeedSequence(entropy).generate_state(workers).tolist()
        return MultiThreadedAugmenter(  # type: ignore[no-any-return]
            spec.sampler,
            spec.transforms,
            workers,
            num_cached_per_queue=2,
            seeds=seeds,
            pin_memory=self.device.type == "cuda",
        )

    def close(self) -> None:
        """Stop loader worker processes, if any, and flush TensorBoard."""
        for batches in (self.train_batches, self.val_batches):
            if isinstance(batches, MultiThreadedAugmenter):
                batches._finish()
        self.train_batches = self.val_batches = iter(())
        if self.writer is not None:
            self.writer.close()
            self.writer = None
