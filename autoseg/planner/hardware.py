"""What to plan for: the GPU found (or named), or this machine's CPU, its RAM and its speed."""

from __future__ import annotations

import glob
import os
import platform
import sys
from pathlib import Path

from autoseg.errors import ConfigError
from autoseg.log import get_logger
from autoseg.planner import cpu_speed as cpu_speed_module
from autoseg.planner.heuristics import PlannerHeuristics
from autoseg.planner.plans import CpuSpeed, HardwareTarget

__all__ = ["cuda_possible", "detect_hardware", "physical_memory_bytes"]

_log = get_logger(__name__)
_GPU_DEVICE_NODES = ("/dev/nvidiactl", "/dev/nvidia[0-9]*", "/dev/dxg", "/dev/kfd")
"""Device nodes a CUDA (or ROCm) device needs on Linux: NVIDIA, WSL's GPU, AMD's KFD."""


def physical_memory_bytes() -> int:
    """Physical RAM of this machine in bytes."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 * 1024**3


def cuda_possible() -> bool:
    """False when this machine certainly has no CUDA device (Linux without GPU device nodes),
    so the planner can skip importing torch (seconds) for the check; True otherwise."""
    if not sys.platform.startswith("linux"):
        return True
    return any(glob.glob(pattern) for pattern in _GPU_DEVICE_NODES)


def _cuda_target(device: str | None, cpu_count: int) -> HardwareTarget | None:
    """The detected GPU's target, or None to plan for the CPU."""
    if device == "cpu" or (device is None and not cuda_possible()):
        return None
    import torch

    if not torch.cuda.is_available():
        if device == "cuda":
            raise ConfigError(
                "--device cuda was requested but no CUDA device is available; "
                "use --device cpu, or --gpu-memory SIZE to plan for a GPU elsewhere"
            )
        return None
    properties = torch.cuda.get_device_properties(torch.cuda.current_device())
    return HardwareTarget(
        "cuda", str(properties.name), int(properties.total_memory), "detected", cpu_count
    )


def detect_hardware(
    device: str | None,
    gpu_memory_bytes: int | None,
    heuristics: PlannerHeuristics,
    *,
    cpu_speed_cache: Path | None = None,
    cpu_speed: CpuSpeed | None = None,
) -> HardwareTarget:
    """Choose the memory (and, on CPU, compute) target of the plan.

    Args:
        device: "cuda", "cpu", or None to use CUDA when available.
        gpu_memory_bytes: ``--gpu-memory``: plan for a GPU of this size (also from a machine
            without one, e.g. to plan on a laptop for a cluster).
        heuristics: Supplies the CPU RAM fraction and the threads' parallel efficiency.
        cpu_speed_cache: Where this machine's measured CPU speed is kept (the workspace's
            ``cpu_speed.json``); None measures without keeping it.
        cpu_speed: Use this speed instead of measuring (tests, or planning for another CPU).

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
    gpu = _cuda_target(device, cpu_count)
    if gpu is not None:
        return gpu
    if cpu_speed is None:
        efficiency = heuristics.cpu_parallel_efficiency
        cpu_speed = (
            cpu_speed_module.measure_cpu_speed(efficiency)
            if cpu_speed_cache is None
            else cpu_speed_module.cpu_speed_for_machine(cpu_speed_cache, efficiency)
        )
    target = int(physical_memory_bytes() * heuristics.cpu_ram_fraction)
    _log.info(
        "planning for the CPU (%d cores, %.1f GB RAM target; training speed %s)",
        cpu_count,
        target / 1e9,
        cpu_speed.describe(),
    )
    return HardwareTarget(
        "cpu", platform.processor() or platform.machine(), target, "cpu-ram", cpu_count, cpu_speed
    )
