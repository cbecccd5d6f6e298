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
from pathlib import Path
from typing import Any

from autoseg import __version__
from autoseg.atomic import atomic_write_json
from autoseg.errors import PlansError
from autoseg.log import get_logger
from autoseg.planner.plans import CpuSpeed

__all__ = ["cpu_speed_for_machine", "machine_signature", "measure_cpu_speed"]

_log = get_logger(__name__)


def machine_signature() -> dict[str, Any]:
    """What a cached measurement must match: CPU model, cores, torch and autoseg versions."""
    return {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count() or 1,
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0,
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


def measure_cpu_speed(parallel_efficiency: float) -> CpuSpeed:
    """Measure this CPU now (a few seconds; see :func:`autoseg.planner.cpu_probe.measure`)."""
    from autoseg.planner.cpu_probe import measure  # torch: loaded only to measure

    return measure(parallel_efficiency)


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
