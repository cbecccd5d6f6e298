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
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from batchgenerators.dataloading.multi_threaded_augmenter import MultiThreadedAugmenter
from batchgenerators.dataloading.single_threaded_augmenter import SingleThreadedAugmenter

from autoseg.inference.checkpoint import LoadedCheckpoint
from autoseg.log import get_logger
from autoseg.networks import build_network
from autoseg.planner.plans import ConfigurationPlan, Plans
from autoseg.seeding import capture_rng_state, seed_everything
from autoseg.trainers.config import TrainConfig
from autoseg.trainers.device import default_num_workers, select_device, use_amp
from autoseg.trainers.distributed import DistContext
from autoseg.trainers.losses import DeepSupervisionLoss, SegmentationLoss
from autoseg.trainers.optim import LRSchedule, make_optimizer, make_schedule
from autoseg.trainers.registry import strategy_for
from autoseg.trainers.resume import load_pretrained, restore_session
from autoseg.trainers.state import TrainingState
from autoseg.trainers.strategy import LoaderSpec, TrainingStrategy
from autoseg.trainers.tensorboard import TensorBoardWriter
from autoseg.workspace import FoldPaths, Workspace

__all__ = [
    "DEFAULT_GPU_EPOCHS",
    "DEFAULT_ITERS_PER_EPOCH",
    "DEFAULT_VAL_ITERS",
    "FoldSpec",
    "Session",
    "open_session",
]

DEFAULT_GPU_EPOCHS = 1000
"""Epochs on a GPU when neither --epochs nor --time-budget is given; also the most a
time budget may choose."""
DEFAULT_ITERS_PER_EPOCH = 250
DEFAULT_VAL_ITERS = 50
_log = get_logger(__name__)


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


def _initial_state(config: TrainConfig, device: torch.device) -> TrainingState:
    state = _epoch_plan(config, device)
    state.iters_per_epoch = config.iters_per_epoch or DEFAULT_ITERS_PER_EPOCH
    state.val_iters = config.val_iters or DEFAULT_VAL_ITERS
    return state


def _epoch_plan(config: TrainConfig, device: torch.device) -> TrainingState:
    if config.epochs is not None:
        return TrainingState(config.epochs, "--epochs")
    if config.time_budget_seconds is not None:
        return TrainingState(
            DEFAULT_GPU_EPOCHS, "--time-budget", config.time_budget_seconds, epochs_decided=False
        )
    if device.type != "cuda":
        budget = config.cpu_default_budget_seconds
        _log.warning(
            "training on the %s without --epochs or --time-budget: the number of epochs will "
            "be fitted into the default budget of %.0f minutes per fold",
            device.type.upper(),
            budget / 60,
        )
        return TrainingState(DEFAULT_GPU_EPOCHS, "cpu default budget", budget, epochs_decided=False)
    return TrainingState(DEFAULT_GPU_EPOCHS, "default")


def _hyper(config: TrainConfig, strategy: TrainingStrategy, workers: int) -> dict[str, Any]:
    defaults = strategy.defaults
    return {
        "lr": config.lr if config.lr is not None else defaults.lr,
        "momentum": config.momentum if config.momentum is not None else defaults.momentum,
        "loss": config.loss if config.loss is not None else defaults.loss,
        "num_workers": workers,
    }


def _resolve(
    config: TrainConfig, plan: ConfigurationPlan, strategy: TrainingStrategy, dist: DistContext
) -> tuple[torch.device, dict[str, Any]]:
    """The device and the run-time choices recorded as "resolved" (loader workers share the
    machine's cores with the other ranks on it)."""
    device = dist.device if dist.device is not None else select_device(config.device)
    cores = max(1, (os.cpu_count() or 1) // dist.local_world_size)
    workers = config.num_workers
    if workers is None:
        workers = default_num_workers(device, cores)
    resolved = {"device": str(device), **_hyper(config, strategy, workers)}
    resolved["amp"] = use_amp(config.amp, device, plan.precision)
    resolved["channels_last"] = (
        config.channels_last
        if config.channels_last is not None
        else device.type == "cpu" and strategy.defaults.channels_last_on_cpu
    )
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    resolved["threads"] = torch.get_num_threads()
    if dist.is_distributed:
        batch = plan.batch_size
        resolved["distributed"] = {
            "world_size": dist.world_size,
            "backend": dist.backend,
            "batch_size_per_process": batch,
            "effective_batch_size": batch * dist.world_size,
        }
        _log.info(
            "%s: batch %d per process x %d processes = effective batch %d; learning rate %g "
            "(not scaled)",
            plan.name,
            batch,
            dist.world_size,
            batch * dist.world_size,
            resolved["lr"],
        )
    return device, resolved


def open_session(
    spec: FoldSpec,
    config: TrainConfig,
    *,
    checkpoint: LoadedCheckpoint | None = None,
    pretrained: Path | None = None,
    dist: DistContext | None = None,
) -> Session:
    """Build a fold's training objects; restore ``checkpoint`` (resume) if given.

    Under torchrun (``dist``, see :mod:`autoseg.trainers.distributed`) the network is
    wrapped in DistributedDataParallel after the weights are restored, and ranks other than 0
    re-seed their sampling from (seed, rank, epoch) after it.

    Raises:
        CheckpointError: if the checkpoint or the pretrained weights do not fit.
    """
    dist = dist if dist is not None else DistContext()
    plan = spec.config_plan
    strategy = strategy_for(plan.network.kind)
    device, resolved = _resolve(config, plan, strategy, dist)
    seed_everything(config.seed)  # the same initial weights on every rank
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    module = build_network(plan.network).to(device)
    if resolved["channels_last"]:
        module = module.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
    if pretrained is not None:
        load_pretrained(module, pretrained)
        resolved["pretrained"] = str(pretrained)
    optimizer = make_optimizer(
        module.parameters(),
        config.optimizer,
        lr=resolved["lr"],
        momentum=resolved["momentum"],
        weight_decay=config.weight_decay,
    )
    state = _initial_state(config, device)
    schedule = make_schedule(
        config.schedule,
        optimizer,
        initial_lr=resolved["lr"],
        total_epochs=state.total_epochs,
        poly_exponent=config.poly_exponent,
        plateau_patience=config.plateau_patience,
    )
    session = Session(
        spec=spec,
        config=config,
        resolved=resolved,
        strategy=strategy,
        device=device,
        amp=resolved["amp"],
        module=module,
        network=module,
        optimizer=optimizer,
        schedule=schedule,
        scaler=torch.amp.GradScaler(device.type, enabled=resolved["amp"]),
        loss=strategy.make_loss(plan, resolved["loss"]),
        state=state,
        dist=dist,
    )
    if checkpoint is not None:
        restore_session(session, checkpoint)
    if dist.rank != 0:  # rank 0 keeps the seed (or its checkpointed RNG states)
        seed_everything(dist.seed(config.seed, session.state.epoch))
    session.clock = (session.state.elapsed_seconds, time.perf_counter())
    session.network = dist.wrap(module)
    if config.compile:
        session.network = torch.compile(session.network)
    session.start_loaders()
    return session
