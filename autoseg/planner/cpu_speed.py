"""This CPU's training throughput, measured: what a CPU plan's compute budget is made from.

On a CPU, a plan that fits in RAM can still take many seconds per iteration, so the planner
keeps one iteration's analytic compute (:mod:`autoseg.planner.compute`, GFLOP) under
``rate x cpu_seconds_per_iteration``. The rate is measured in those same analytic GFLOP, per
second of one thread's CPU time: a few forward + backward steps of a small U-Net and a small
DeepMedic (the two families use the CPU differently: on an AVX512 core about 75 and
50 GFLOP/s in float32), in float32 and, where the CPU computes bfloat16 natively, under
bfloat16 autocast (there about 2x and 1.4x faster). Measuring one thread's CPU time rather
than the wall time of every core keeps the figure steady when other processes load the
machine: two threads sharing two busy cores ran ten times slower than one thread there.
The rate of ``threads`` threads is the one-thread rate times
``1 + (threads - 1) x cpu_parallel_efficiency`` (see :class:`~autoseg.planner.plans.CpuSpeed`).

A measurement takes a few seconds; :func:`cpu_speed_for_machine` keeps it in the workspace
(``cpu_speed.json``) for this machine (CPU model, core count, torch and autoseg versions), so
re-planning reuses it and the plan stays the same.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from autoseg import __version__
from autoseg.atomic import atomic_write_json
from autoseg.errors import PlansError
from autoseg.log import get_logger
from autoseg.networks import DeepMedicConfig, UNetConfig, build_network
from autoseg.networks.deepmedic_config import (
    PAPER_FEATURES,
    PathwayConfig,
    SubsampledPathwayConfig,
)
from autoseg.networks.deepmedic_geometry import segment_shapes
from autoseg.planner.compute import estimate_training_gflops
from autoseg.planner.plans import CpuSpeed
from autoseg.precision import autocast_context, native_bf16_cpu

__all__ = ["cpu_speed_for_machine", "machine_signature", "measure_cpu_speed"]

_log = get_logger(__name__)
_STEPS = 3


def machine_signature() -> dict[str, Any]:
    """What a cached measurement must match: CPU model, cores, torch and autoseg versions."""
    return {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count() or 1,
        "threads": torch.get_num_threads(),
        "torch": importlib.metadata.version("torch"),
        "autoseg": __version__,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _probe_unet() -> tuple[torch.nn.Module, list[torch.Tensor], float]:
    config = UNetConfig(
        in_channels=1,
        num_classes=3,
        features_per_stage=(16, 32, 64),
        kernel_sizes=((3, 3, 3),) * 3,
        strides=((1, 1, 1), (2, 2, 2), (2, 2, 2)),
    )
    patch, batch = (32, 32, 32), 2
    inputs = [torch.randn(batch, 1, *patch)]
    return build_network(config), inputs, estimate_training_gflops(config, patch, batch)


def _probe_deepmedic() -> tuple[torch.nn.Module, list[torch.Tensor], float]:
    base = DeepMedicConfig.default(1, 3)
    features = tuple(max(1, f // 2) for f in PAPER_FEATURES)
    normal = PathwayConfig(
        features=features, kernels=base.normal.kernels, residual_at=base.normal.residual_at
    )
    subsampled = tuple(
        SubsampledPathwayConfig(
            factor=s.factor, features=features, kernels=s.kernels, residual_at=s.residual_at
        )
        for s in base.subsampled
    )
    config = DeepMedicConfig(in_channels=1, num_classes=3, normal=normal, subsampled=subsampled)
    output, batch = (9, 9, 9), 4
    shapes = segment_shapes(config, output)
    inputs = [torch.randn(batch, 1, *shapes.normal)] + [
        torch.randn(batch, 1, *s) for s in shapes.subsampled
    ]
    return build_network(config), [inputs], estimate_training_gflops(config, output, batch)  # type: ignore[list-item]


_PROBES: dict[str, Callable[[], tuple[torch.nn.Module, list[Any], float]]] = {
    "unet": _probe_unet,
    "deepmedic": _probe_deepmedic,
}


def _step_seconds(network: torch.nn.Module, inputs: list[Any], bf16: bool) -> float:
    """Least CPU time of a few one-thread forward + backward steps (after a warm-up step)."""
    best = float("inf")
    for step in range(_STEPS + 1):
        start = time.thread_time()
        network.zero_grad(set_to_none=True)
        with autocast_context(bf16, "cpu"):
            outputs = network(*inputs)
            outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            loss = sum(o.float().mean() for o in outputs)
        loss.backward()  # type: ignore[union-attr]
        if step:
            best = min(best, time.thread_time() - start)
    return best


def measure_cpu_speed(parallel_efficiency: float) -> CpuSpeed:
    """Measure one thread's training GFLOP/s of both families, float32 and (where native)
    bfloat16; the speed of torch's thread count follows from ``parallel_efficiency``."""
    precisions = ("fp32", "bf16") if native_bf16_cpu() else ("fp32",)
    rates: dict[str, dict[str, float]] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            for family, probe in _PROBES.items():
                network, inputs, gflops = probe()
                network.train()
                rates[family] = {
                    p: round(gflops / _step_seconds(network, inputs, p == "bf16"), 1)
                    for p in precisions
                }
    finally:
        torch.set_num_threads(threads)
    return CpuSpeed(rates, threads, parallel_efficiency, "measured")


def cpu_speed_for_machine(cache: Path, parallel_efficiency: float) -> CpuSpeed:
    """The measured speed of this machine, from ``cache`` when it was measured here before.

    A cache whose machine signature differs (another CPU, core count, torch or autoseg
    version), or that cannot be read, is measured again and rewritten.
    """
    signature = machine_signature()
    try:
        data = json.loads(cache.read_text())
        if data.get("machine") == signature:
            cached = CpuSpeed.from_dict(data["speed"])
            return dataclasses.replace(cached, parallel_efficiency=parallel_efficiency)
    except (OSError, ValueError, KeyError, TypeError, PlansError):
        pass
    start = time.perf_counter()
    speed = measure_cpu_speed(parallel_efficiency)
    _log.info(
        "measured this CPU's training speed in %.1f s: %s",
        time.perf_counter() - start,
        speed.describe(),
    )
    try:
        atomic_write_json(cache, {"machine": signature, "speed": speed.to_dict()})
    except OSError as err:  # a read-only workspace is reported by the steps that need it
        _log.debug("could not cache the CPU speed in %s: %s", cache, err)
    return speed
