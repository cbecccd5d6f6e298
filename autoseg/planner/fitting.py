"""The memory/compute test a configuration's search runs, and the plan entry it ends in.

One rule for every configuration: the training estimate must stay under
``memory_safety_margin`` x the memory target and, on a CPU, the compute of one iteration
under the family's measured speed x ``cpu_seconds_per_iteration``
(:func:`compute_budget_gflops`); the precision per family comes from :func:`precision_for`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from autoseg.networks import DeepMedicConfig, UNetConfig
from autoseg.planner.compute import estimate_training_gflops
from autoseg.planner.hardware_target import HardwareTarget, network_family
from autoseg.planner.heuristics import PlannerHeuristics
from autoseg.planner.memory import estimate_inference_memory, estimate_training_memory
from autoseg.planner.plans import ConfigurationPlan
from autoseg.typing import Shape3

__all__ = [
    "Budget",
    "TrainingChoice",
    "compute_budget_gflops",
    "make_budget",
    "make_configuration",
    "precision_for",
    "training_for",
]

Network = UNetConfig | DeepMedicConfig


def precision_for(kind: str, hardware: HardwareTarget, heuristics: PlannerHeuristics) -> str:
    """ "amp" on a GPU; on a CPU "bf16" where it measured faster for the family, else "fp32"."""
    if hardware.device == "cuda":
        return "amp"
    if hardware.cpu_speed is None:
        return "fp32"
    return hardware.cpu_speed.fastest_precision(
        network_family(kind), heuristics.cpu_bf16_min_speedup
    )


def compute_budget_gflops(
    kind: str, precision: str, hardware: HardwareTarget, heuristics: PlannerHeuristics
) -> float | None:
    """GFLOP one training iteration may cost: on a CPU, its measured rate for the family and
    precision times ``cpu_seconds_per_iteration``; None (no compute limit) on a GPU.

    The 2D U-Net uses the U-Net family's measured rate (its convolutions are the 3D
    network's with kernels of 1 across the slices, counted the same way)."""
    if hardware.device == "cuda" or hardware.cpu_speed is None:
        return None
    rate = hardware.cpu_speed.rate(network_family(kind), precision)
    return rate * heuristics.cpu_seconds_per_iteration


class TrainingChoice(NamedTuple):
    """A configuration's default optimiser, initial learning rate and loss."""

    optimizer: str
    lr: float
    loss: str


def training_for(
    kind: str, hardware: HardwareTarget, heuristics: PlannerHeuristics
) -> TrainingChoice:
    """The optimiser, learning rate and loss a configuration trains with by default: the
    family's heuristics for the device planned for (``cpu_unet_optimizer`` / ``cpu_unet_lr``
    on a CPU, ``unet_optimizer`` / ``unet_lr`` on a GPU, ``unet_loss`` on both; DeepMedic's
    likewise). Every U-Net configuration (2D, low resolution, cascade) takes the U-Net's."""
    family = network_family(kind)
    prefix = "cpu_" if hardware.device == "cpu" else ""
    return TrainingChoice(
        optimizer=str(getattr(heuristics, f"{prefix}{family}_optimizer")),
        lr=float(getattr(heuristics, f"{prefix}{family}_lr")),
        loss=str(getattr(heuristics, f"{family}_loss")),
    )


@dataclass(frozen=True)
class Budget:
    """The limits of one network kind's search.

    Attributes:
        precision: The training precision the estimates assume.
        memory_limit: Bytes the training estimate may use.
        compute_limit: GFLOP an iteration may cost (None on a GPU).
    """

    precision: str
    memory_limit: float
    compute_limit: float | None

    def fits(self, config: Network, patch: Shape3, batch: int) -> bool:
        """Training at (patch, batch) fits memory and, on a CPU, the compute budget."""
        if estimate_training_memory(config, patch, batch, self.precision) > self.memory_limit:
            return False
        return (
            self.compute_limit is None
            or estimate_training_gflops(config, patch, batch) <= self.compute_limit
        )

    def fits_inference(self, config: Network, patch: Shape3) -> bool:
        """One inference window/segment fits memory."""
        return estimate_inference_memory(config, patch, 1, self.precision) <= self.memory_limit


def make_budget(hardware: HardwareTarget, heuristics: PlannerHeuristics, kind: str) -> Budget:
    """The :class:`Budget` of network ``kind`` on ``hardware``."""
    precision = precision_for(kind, hardware, heuristics)
    return Budget(
        precision=precision,
        memory_limit=hardware.memory_target_bytes * heuristics.memory_safety_margin,
        compute_limit=compute_budget_gflops(kind, precision, hardware, heuristics),
    )


def make_configuration(
    name: str,
    network: Network,
    patch: Shape3,
    inference_patch: Shape3,
    batch: int,
    oversample: float,
    precision: str,
    training: TrainingChoice,
    common: dict[str, Any],
    previous_stage: str | None = None,
    batch_dice: bool = False,
) -> ConfigurationPlan:
    """The plan entry, with its memory and compute estimates; ``training`` is its default
    optimiser, learning rate and loss, from :func:`training_for`."""
    return ConfigurationPlan(
        name=name,
        network=network,
        patch_size=patch,
        inference_patch_size=inference_patch,
        batch_size=batch,
        estimated_memory_bytes=estimate_training_memory(network, patch, batch, precision),
        estimated_inference_memory_bytes=estimate_inference_memory(
            network, inference_patch, 1, precision
        ),
        estimated_gflops_per_iteration=estimate_training_gflops(network, patch, batch),
        foreground_oversample=oversample,
        precision=precision,
        optimizer=training.optimizer,
        lr=training.lr,
        loss=training.loss,
        previous_stage=previous_stage,
        batch_dice=batch_dice,
        **common,
    )
