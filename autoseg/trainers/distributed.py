"""Multi-GPU training with DistributedDataParallel, launched by ``torchrun``.

``torchrun --nproc_per_node=N -m autoseg train ...`` starts N processes; each finds its place
in the environment torchrun sets (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``). Without them nothing changes: one
process, no process group. Under torchrun (even with one process):

- the process group uses NCCL on CUDA (one GPU per local rank, ``cuda:LOCAL_RANK``) and gloo
  on the CPU; a second, gloo group carries the small control messages (barriers, the
  pseudo-Dice counts, rank 0's epoch plan), so they never wait on the GPU;
- the network is wrapped in ``DistributedDataParallel`` (gradients averaged over the ranks);
  every rank samples its own batches of the plan's batch size (what the plan sized for one
  GPU's memory), with a rank-specific seed (:func:`rank_seed`), so the effective batch is N
  times the plan's; the learning rate is left unchanged (the averaged gradient of a larger
  batch estimates the same gradient with less noise; SGD at 1e-2 with momentum 0.99 is
  already close to its stability limit, and scaling the rate by N would need a warm-up);
- rank 0 alone writes checkpoints (the plain module's weights, no ``module.`` prefix),
  ``log.jsonl``, ``progress.png``, ``train_config.json`` and ``splits.json``, and runs the
  final validation while the others wait; the validation counts are all-reduced so every
  rank sees the same pseudo-Dice (and the same early-stopping decision), and the time
  budget's epoch plan is rank 0's, broadcast;
- every collective has a timeout (30 minutes, or the optional ``AUTOSEG_DIST_TIMEOUT``, e.g.
  ``10m``); a rank that fails makes torchrun stop the others, and a stuck one is reported
  by the barrier that waits for it. Ranks other than 0 log warnings only.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
import torch.distributed as tdist
from torch.nn.parallel import DistributedDataParallel

from autoseg.durations import parse_duration
from autoseg.errors import AutosegError, ConfigError
from autoseg.log import get_logger
from autoseg.trainers.device import select_device

if TYPE_CHECKING:
    from autoseg.trainers.state import TrainingState

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "FINAL_WAIT_SECONDS",
    "TIMEOUT_ENV",
    "DistContext",
    "DistributedError",
    "Launch",
    "detect_launch",
    "distributed",
    "rank_seed",
    "share_epoch_plan",
    "share_iteration",
]

DEFAULT_TIMEOUT_SECONDS = 1800.0
"""Timeout of every collective (joining the group, barriers, all-reduces), in seconds."""
FINAL_WAIT_SECONDS = 12 * 3600.0
"""How long the other ranks wait for rank 0's end-of-training validation (seconds); longer
than the collective timeout because validating a large fold can take hours on one GPU."""
TIMEOUT_ENV = "AUTOSEG_DIST_TIMEOUT"
"""Optional environment variable overriding :data:`DEFAULT_TIMEOUT_SECONDS` (e.g. ``10m``)."""
_PLAN_FIELDS = (
    "total_epochs",
    "epochs_decided",
    "iters_per_epoch",
    "val_iters",
    "stopped_early",
    "out_of_time",
)
_LAUNCH_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE")
_log = get_logger(__name__)
T = TypeVar("T")


class DistributedError(AutosegError):
    """Joining the process group failed, or another rank failed, stalled or timed out."""


@dataclass(frozen=True)
class Launch:
    """Where this process stands in a torchrun launch (from its environment).

    Attributes:
        rank: Global rank in ``[0, world_size)``.
        local_rank: Rank on this machine (its GPU index).
        world_size: Processes in total, over every machine.
        local_world_size: Processes on this machine.
        master: ``MASTER_ADDR:MASTER_PORT`` of the rendezvous.
        timeout_seconds: Timeout of every collective.
    """

    rank: int
    local_rank: int
    world_size: int
    local_world_size: int
    master: str
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS


def _env_int(environ: Mapping[str, str], name: str, default: int | None = None) -> int:
    text = environ.get(name)
    if text is None:
        if default is None:
            raise DistributedError(f"{name} is not set; start distributed training with torchrun")
        return default
    try:
        value = int(text)
    except ValueError:
        raise DistributedError(f"{name} must be an integer, got {text!r}") from None
    if value < 0:
        raise DistributedError(f"{name} must be >= 0, got {value}")
    return value


def detect_launch(environ: Mapping[str, str] | None = None) -> Launch | None:
    """The torchrun launch this process belongs to, or None when started on its own.

    Args:
        environ: The environment to read (default: ``os.environ``).

    Raises:
        DistributedError: if ``WORLD_SIZE`` is set but the other variables are missing or
            inconsistent (e.g. ``RANK`` not below ``WORLD_SIZE``).
        ConfigError: if ``AUTOSEG_DIST_TIMEOUT`` is not a duration.
    """
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env:
        return None
    world = _env_int(env, "WORLD_SIZE")
    rank = _env_int(env, "RANK")
    local_rank = _env_int(env, "LOCAL_RANK", rank)
    local_world = _env_int(env, "LOCAL_WORLD_SIZE", local_rank + 1)
    if world < 1 or rank >= world or local_rank >= local_world or local_world > world:
        values = ", ".join(f"{name}={env.get(name)}" for name in _LAUNCH_VARS)
        raise DistributedError(
            f"inconsistent torchrun environment ({values}): need 0 <= RANK < WORLD_SIZE and "
            "0 <= LOCAL_RANK < LOCAL_WORLD_SIZE <= WORLD_SIZE"
        )
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not env.get(name)]
    if missing:
        raise DistributedError(
            f"WORLD_SIZE is set but {' and '.join(missing)} not; start with torchrun"
        )
    timeout = DEFAULT_TIMEOUT_SECONDS
    if env.get(TIMEOUT_ENV):
        try:
            timeout = parse_duration(env[TIMEOUT_ENV])
        except ConfigError as err:
            raise ConfigError(f"{TIMEOUT_ENV}: {err.message}") from None
    master = f"{env['MASTER_ADDR']}:{env['MASTER_PORT']}"
    return Launch(rank, local_rank, world, local_world, master, timeout)


def rank_seed(seed: int, rank: int, epoch: int = 0) -> int:
    """The sampling seed of ``rank``: ``seed`` itself on rank 0 (a one-process run is
    unchanged), else a number derived from (seed, rank, epoch). ``epoch`` is the epoch a
    resumed run starts at: only rank 0's RNG states are checkpointed, the others re-derive
    theirs, so a resumed run matches an uninterrupted one on rank 0 only."""
    if rank == 0:
        return int(seed)
    entropy = [int(seed), int(rank), int(epoch)]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint32)[0])


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


@dataclass(frozen=True)
class DistContext:
    """This process's rank and the helpers the trainer calls; the default is one process
    (every helper is then a no-op).

    Attributes:
        rank: Global rank (0 writes every artefact).
        local_rank: Rank on this machine.
        world_size: Number of processes.
        local_world_size: Number of processes on this machine (they share its CPU cores).
        device: The device of this rank (``cuda:LOCAL_RANK``, or the CPU); None when not
            distributed (the trainer picks it from ``--device``).
        backend: "nccl" or "gloo"; None when not distributed.
        timeout_seconds: Timeout of the collectives.
        group: The gloo process group of the control messages (None: the default group).
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1
    device: torch.device | None = None
    backend: str | None = None
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    group: Any = None

    @property
    def is_distributed(self) -> bool:
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def seed(self, seed: int, epoch: int = 0) -> int:
        """:func:`rank_seed` of this rank."""
        return rank_seed(seed, self.rank, epoch)

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` in DistributedDataParallel (rank 0's weights are broadcast), or as is."""
        if not self.is_distributed:
            return module
        if self.device is not None and self.device.type == "cuda":
            index = self.device.index
            return DistributedDataParallel(module, device_ids=[index], output_device=index)
        return DistributedDataParallel(module)

    @contextlib.contextmanager
    def _reported(self, what: str, seconds: float | None = None) -> Iterator[None]:
        try:
            yield
        except RuntimeError as err:  # DistBackendError, DistStoreError, gloo timeouts, ...
            raise DistributedError(
                f"rank {self.rank} of {self.world_size}: {what}: another process failed or did "
                f"not answer within {seconds or self.timeout_seconds:g} s ({_first_line(err)})"
            ) from None

    def barrier(self, what: str, timeout_seconds: float | None = None) -> None:
        """Wait until every rank arrives (at most ``timeout_seconds``, default the context's).

        Raises:
            DistributedError: naming ``what`` if a rank did not arrive in time.
        """
        if not self.is_distributed:
            return
        seconds = float(timeout_seconds or self.timeout_seconds)
        with self._reported(what, seconds):
            timeout = timedelta(seconds=seconds)
            tdist.monitored_barrier(self.group, timeout=timeout, wait_all_ranks=True)

    def all_reduce_sum(self, tensor: torch.Tensor, what: str = "all-reduce") -> torch.Tensor:
        """The element-wise sum of ``tensor`` over the ranks (a new tensor, same device)."""
        if not self.is_distributed:
            return tensor
        total = tensor.detach().cpu().clone()
        with self._reported(what):
            tdist.all_reduce(total, group=self.group)
        return total.to(tensor.device)

    def mean(self, value: float, what: str = "all-reduce") -> float:
        """The mean of ``value`` over the ranks (NaN if any rank's is NaN)."""
        if not self.is_distributed:
            return value
        total = self.all_reduce_sum(torch.tensor([value], dtype=torch.float64), what)
        return float(total[0]) / self.world_size

    def broadcast(self, value: T, what: str = "broadcast") -> T:
        """Rank 0's ``value`` on every rank (any picklable object)."""
        if not self.is_distributed:
            return value
        box = [value]
        with self._reported(what):
            tdist.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

    @contextlib.contextmanager
    def main_first(self, what: str) -> Iterator[None]:
        """Run the block on rank 0 first, then on the other ranks (e.g. writing a file the
        others then read). Rank 0 releases the others even when its block raises, so they
        meet the same error themselves instead of waiting for it."""
        if not self.is_main:
            self.barrier(what)
        try:
            yield
        finally:
            if self.is_main:
                self.barrier(what)


def _launch_device(requested: str, launch: Launch) -> torch.device:
    device = select_device(requested)
    if device.type == "mps":
        _log.warning("DistributedDataParallel does not support Apple MPS; using the CPU")
        return torch.device("cpu")
    if device.type != "cuda":
        return device
    visible = torch.cuda.device_count()
    if launch.local_world_size > visible or launch.local_rank >= visible:
        raise DistributedError(
            f"torchrun started {launch.local_world_size} processes on this machine "
            f"(--nproc_per_node) but only {visible} CUDA device(s) are visible: start at most "
            f"{visible}, one per GPU (or choose the GPUs with CUDA_VISIBLE_DEVICES)"
        )
    return torch.device("cuda", launch.local_rank)


def _join(launch: Launch, backend: str) -> None:
    try:
        tdist.init_process_group(
            backend,
            timeout=timedelta(seconds=launch.timeout_seconds),
            rank=launch.rank,
            world_size=launch.world_size,
        )
    except (RuntimeError, ValueError) as err:
        raise DistributedError(
            f"rank {launch.rank} of {launch.world_size} could not join the process group at "
            f"{launch.master} within {launch.timeout_seconds:g} s ({_first_line(err)})"
        ) from None


@contextlib.contextmanager
def _quiet_logs(rank: int) -> Iterator[None]:
    """Ranks other than 0 log warnings and errors only (rank 0 reports the progress)."""
    logger = logging.getLogger("autoseg")
    previous = logger.level
    if rank != 0 and logger.getEffectiveLevel() < logging.WARNING:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(previous)


@contextlib.contextmanager
def distributed(
    requested_device: str, *, environ: Mapping[str, str] | None = None
) -> Iterator[DistContext]:
    """Join the torchrun process group for the block (and leave it after), or do nothing.

    Args:
        requested_device: ``--device`` ("auto", "cuda", "cpu" or "mps"); CUDA gives NCCL and
            ``cuda:LOCAL_RANK``, the CPU gives gloo.
        environ: The environment to detect torchrun from (default: ``os.environ``).

    Yields:
        This process's :class:`DistContext` (one process without torchrun). A process group
        that already exists (autoseg called from a user's own DDP script) is used, not
        re-created nor destroyed.

    Raises:
        DistributedError: a bad torchrun environment, more processes than visible GPUs, or
            the group could not be joined in time.
    """
    launch = detect_launch(environ)
    if launch is None:
        yield DistContext()
        return
    device = _launch_device(requested_device, launch)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    owned = not tdist.is_initialized()
    if owned:
        _join(launch, "nccl" if device.type == "cuda" and tdist.is_nccl_available() else "gloo")
    try:
        backend = str(tdist.get_backend())
        timeout = timedelta(seconds=launch.timeout_seconds)
        group = None if backend == "gloo" else tdist.new_group(backend="gloo", timeout=timeout)
        context = DistContext(
            launch.rank,
            launch.local_rank,
            launch.world_size,
            launch.local_world_size,
            device,
            backend,
            launch.timeout_seconds,
            group,
        )
        if context.is_main:
            where = "one GPU each" if device.type == "cuda" else device.type
            _log.info("torchrun: %d processes (%s, %s)", launch.world_size, backend, where)
        with _quiet_logs(launch.rank):
            yield context
    finally:
        if owned and tdist.is_initialized():
            tdist.destroy_process_group()


def share_epoch_plan(dist: DistContext, state: TrainingState, changed: bool) -> bool:
    """Give every rank rank 0's epoch plan (expected epochs, epoch length, validation
    batches, early stop, end of the budget), which rank 0 fits to its own timings; returns
    rank 0's ``changed``.

    Every rank must call it at the same point (it is a collective under torchrun)."""
    if not dist.is_distributed:
        return changed
    mine = ([getattr(state, name) for name in _PLAN_FIELDS], bool(changed))
    values, changed = dist.broadcast(mine, "sharing rank 0's epoch plan")
    for name, value in zip(_PLAN_FIELDS, values):
        setattr(state, name, value)
    return changed


def share_iteration(dist: DistContext, progress: float, stop: bool) -> tuple[float, bool]:
    """Rank 0's schedule progress and end-of-budget decision before an iteration, on every
    rank (each rank's clock differs a little; the learning rates must not). A collective."""
    if not dist.is_distributed:
        return progress, stop
    shared = dist.broadcast((float(progress), bool(stop)), "sharing the schedule's progress")
    return float(shared[0]), bool(shared[1])
