"""The measurement behind :mod:`autoseg.planner.cpu_speed`: a few one-thread training steps.

Imports torch (seconds), so only :func:`autoseg.planner.cpu_speed.measure_cpu_speed` loads it,
when a measurement is needed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

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

__all__ = ["measure"]

_STEPS = 3


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


def measure(parallel_efficiency: float) -> CpuSpeed:
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
