"""What to plan for: the GPU found (or named), or this machine's CPU and RAM."""

from __future__ import annotations

import os
import platform

from autoseg.errors import ConfigError
from autoseg.log import get_logger
from autoseg.planner.heuristics import PlannerHeuristics
from autoseg.planner.plans import HardwareTarget

__all__ = ["detect_hardware", "physical_memory_bytes"]

_log = get_logger(__name__)


def physical_memory_bytes() -> int:
    """Physical RAM of this machine in bytes."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 * 1024**3


def detect_hardware(
    device: str | None,
    gpu_memory_bytes: int | None,
    heuristics: PlannerHeuristics,
) -> HardwareTarget:
    """Choose the memory (and, on CPU, compute) target of the plan.

    Args:
        device: "cuda", "cpu", or None to use CUDA when available.
        gpu_memory_bytes: ``--gpu-memory``: plan for a GPU of this size (also from a machine
            without one, e.g. to plan on a laptop for a cluster).
        heuristics: Supplies the CPU RAM fraction and compute budget rules.

    Raises:
        ConfigError: if CUDA is requested but not available, or --gpu-memory is combined
            with --device cpu.
    """
    cpu_count = os.cpu_count() or 1
    if gpu_memory_bytes is not None:
        if device == "cpu":
            raise ConfigError(
                "--gpu-memory plans for a GPU; it cannot be combined with --device cpu"
            )
        return HardwareTarget(
            "cuda", "given by --gpu-memory", int(gpu_memory_bytes), "--gpu-memory", cpu_count
        )
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "--device cuda was requested but no CUDA device is available; "
            "use --device cpu, or --gpu-memory SIZE to plan for a GPU elsewhere"
        )
    if device in (None, "cuda") and torch.cuda.is_available():
        index = torch.cuda.current_device()
        properties = torch.cuda.get_device_properties(index)
        return HardwareTarget(
            "cuda", str(properties.name), int(properties.total_memory), "detected", cpu_count
        )
    budget = cpu_count * heuristics.cpu_gflops_per_core * heuristics.cpu_seconds_per_iteration
    target = int(physical_memory_bytes() * heuristics.cpu_ram_fraction)
    _log.info(
        "planning for the CPU (%d cores, %.1f GB RAM target, %.0f GFLOP per iteration)",
        cpu_count,
        target / 1e9,
        budget,
    )
    return HardwareTarget(
        "cpu",
        platform.processor() or platform.machine(),
        target,
        "cpu-ram",
        cpu_count,
        float(budget),
    )
