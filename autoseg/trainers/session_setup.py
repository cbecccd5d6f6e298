"""Open a fold's :class:`~autoseg.trainers.session.Session` from the plan and the TrainConfig.

Fresh, from a checkpoint when resuming (weights, optimiser, schedule, grad scaler, RNG
states, progress; see :mod:`autoseg.trainers.resume`), or from ``--pretrained`` weights with
a fresh optimiser. The epoch count and length start as :mod:`autoseg.trainers.time_budget`
says. Under torchrun the network is wrapped in DistributedDataParallel after the weights are
restored, and ranks other than 0 re-seed their sampling.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch

from autoseg.inference.checkpoint import LoadedCheckpoint
from autoseg.log import get_logger
from autoseg.networks import build_network
from autoseg.planner.plans import ConfigurationPlan, Plans
from autoseg.precision import use_autocast, uses_grad_scaler
from autoseg.seeding import seed_everything
from autoseg.trainers.config import TrainConfig
from autoseg.trainers.cpu_threads import ThreadTuner
from autoseg.trainers.device import default_num_workers, select_device
from autoseg.trainers.distributed import DistContext
from autoseg.trainers.optim import make_optimizer, make_schedule
from autoseg.trainers.registry import strategy_for
from autoseg.trainers.resume import load_pretrained, restore_session
from autoseg.trainers.session import FoldSpec, Session
from autoseg.trainers.strategy import TrainingStrategy
from autoseg.trainers.time_budget import initial_state

__all__ = ["open_session"]

_log = get_logger(__name__)


def _hyper(
    config: TrainConfig,
    plan: ConfigurationPlan,
    strategy: TrainingStrategy,
    workers: int,
    region_based: bool,
) -> dict[str, Any]:
    """The optimiser, learning rate and loss (the command line's, else the plan's; the loss
    of region-based training and of plans that name none: the family's), momentum (the
    command line's, else the family's), and the loader workers."""
    defaults = strategy.defaults
    loss = defaults.region_loss if region_based else (plan.loss or defaults.loss)
    return {
        "optimizer": config.optimizer if config.optimizer is not None else plan.optimizer,
        "lr": config.lr if config.lr is not None else plan.lr,
        "momentum": config.momentum if config.momentum is not None else defaults.momentum,
        "loss": config.loss if config.loss is not None else loss,
        "num_workers": workers,
    }


def _resolve(
    config: TrainConfig,
    plans: Plans,
    plan: ConfigurationPlan,
    strategy: TrainingStrategy,
    dist: DistContext,
) -> tuple[torch.device, dict[str, Any]]:
    """The device and the run-time choices recorded as "resolved" (loader workers share the
    machine's cores with the other ranks on it)."""
    device = dist.device if dist.device is not None else select_device(config.device)
    cores = max(1, (os.cpu_count() or 1) // dist.local_world_size)
    workers = config.num_workers
    if workers is None:
        workers = default_num_workers(device, cores)
    resolved = {
        "device": str(device),
        **_hyper(config, plan, strategy, workers, plans.region_based),
    }
    resolved["amp"] = use_autocast(config.amp, device.type, plan.precision)
    resolved["channels_last"] = (
        config.channels_last
        if config.channels_last is not None
        else device.type == "cpu" and strategy.defaults.channels_last_on_cpu
    )
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    resolved["threads"] = torch.get_num_threads()
    resolved["adaptive_threads"] = (
        device.type == "cpu" and config.threads is None and resolved["threads"] > 1
    )
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
    started: float | None = None,
) -> Session:
    """Build a fold's training objects; restore ``checkpoint`` (resume) if given.

    ``started`` (a ``time.perf_counter()`` reading) is when this run of the fold began: its
    set-up counts in the fold's time (default: now).

    Under torchrun (``dist``, see :mod:`autoseg.trainers.distributed`) the network is
    wrapped in DistributedDataParallel after the weights are restored, and ranks other than 0
    re-seed their sampling from (seed, rank, epoch) after it.

    Raises:
        CheckpointError: if the checkpoint or the pretrained weights do not fit.
    """
    dist = dist if dist is not None else DistContext()
    plan = spec.config_plan
    strategy = strategy_for(
        plan.network.kind, stage_dir=spec.stage_dir, foreground=spec.plans.foreground_labels
    )
    device, resolved = _resolve(config, spec.plans, plan, strategy, dist)
    seed_everything(config.seed)  # the same initial weights on every rank
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    module = build_network(plan.network).to(device)
    if resolved["channels_last"]:
        two_d = getattr(plan.network, "spatial_dims", 3) == 2  # 2D weights: channels_last
        layout = torch.channels_last if two_d else torch.channels_last_3d
        module = module.to(memory_format=layout)  # type: ignore[call-overload]
    if pretrained is not None:
        load_pretrained(module, pretrained)
        resolved["pretrained"] = str(pretrained)
    optimizer = make_optimizer(
        module.parameters(),
        resolved["optimizer"],
        lr=resolved["lr"],
        momentum=resolved["momentum"],
        weight_decay=config.weight_decay,
    )
    state = initial_state(config, device.type)
    schedule = make_schedule(
        config.schedule,
        optimizer,
        initial_lr=resolved["lr"],
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
        scaler=torch.amp.GradScaler(
            device.type, enabled=uses_grad_scaler(resolved["amp"], device.type)
        ),
        loss=strategy.make_loss(spec.plans, plan, resolved["loss"]),
        state=state,
        dist=dist,
        threads=(
            ThreadTuner(resolved["threads"], torch.set_num_threads)
            if resolved["adaptive_threads"]
            else None
        ),
    )
    if checkpoint is not None:
        restore_session(session, checkpoint)
    if dist.rank != 0:  # rank 0 keeps the seed (or its checkpointed RNG states)
        seed_everything(dist.seed(config.seed, session.state.epoch))
    session.clock = (
        session.state.elapsed_seconds,
        time.perf_counter() if started is None else started,
    )
    session.network = dist.wrap(module)
    if config.compile:
        session.network = torch.compile(session.network)
    session.start_loaders()
    return session
