"""Memory-driven choice of the window batch size and of where to accumulate predictions.

Pure arithmetic on byte counts; the network's memory comes in as a callable (the planner's
memory model), so this module does not depend on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

from autoseg.errors import ConfigError
from autoseg.log import get_logger

__all__ = ["CPU_WINDOW_BATCH", "WindowResources", "choose_batch_and_accumulation"]

logger = get_logger(__name__)

CPU_WINDOW_BATCH = 2
"""Windows per forward on CPU. Measured on a shared 2-core AVX2 EPYC with a U-Net of 8-64
features, 80^3 windows, 160x160x120 case: batch 2 took 13.7 s/case vs 18.1 s for batch 1 and
26.2 s for batch 4 (with TTA about 2x faster than one window per forward): oneDNN runs
single-sample 3D convolutions with few channels slowly. For wider U-Nets (16-128 and 32-256
features) batch 1 and 2 were within noise (batch 1 up to 10% faster). Reproduce with
``bench/predict_speed.py --cpu-study``."""


class WindowResources(NamedTuple):
    """How to run sliding-window inference on a device (a tuple, so it unpacks in two)."""

    batch_size: int
    """Windows per forward pass."""
    accumulate_on_compute_device: bool
    """True: accumulators live on the GPU; False: in host (CPU) memory."""


def choose_batch_and_accumulation(
    available_bytes: int | None,
    memory_for_batch: Callable[[int], int],
    image_shape: Sequence[int],
    num_classes: int,
    *,
    in_channels: int = 1,
    max_batch: int = 8,
    usable_fraction: float = 0.9,
    cpu_batch: int = CPU_WINDOW_BATCH,
) -> WindowResources:
    """Pick the window batch size and where to accumulate, from a memory budget.

    On a GPU the accumulators (``num_classes`` class sums plus one weight map, float32 over the
    image) go on the GPU when they fit together with the image and the network's memory for
    one window; the batch is then the largest (up to ``max_batch``) that still fits. Otherwise
    accumulation moves to host memory and the whole budget goes to the batch. On CPU
    (``available_bytes is None``) the answer is ``(cpu_batch, False)``.

    Args:
        available_bytes: Free memory of the compute device in bytes, or ``None`` on CPU.
        memory_for_batch: Inference memory in bytes of the network for a batch of windows
            (e.g. the memory model's estimate); assumed non-decreasing in the batch.
        image_shape: Image (after padding) along (Z, Y, X) in voxels.
        num_classes: Output channels of the network.
        in_channels: Input channels (the image itself is held on the compute device).
        max_batch: Largest batch to consider, >= 1.
        usable_fraction: Share of ``available_bytes`` to plan with, in (0, 1].
        cpu_batch: Batch size on CPU.

    Returns:
        ``WindowResources(batch_size, accumulate_on_compute_device)``.

    Raises:
        ConfigError: If ``max_batch``, ``usable_fraction`` or ``cpu_batch`` is out of range.

    Example:
        >>> choose_batch_and_accumulation(None, lambda b: 0, (64, 64, 64), 3)
        WindowResources(batch_size=2, accumulate_on_compute_device=False)
    """
    if max_batch < 1 or cpu_batch < 1 or not 0.0 < usable_fraction <= 1.0:
        raise ConfigError(
            f"need max_batch >= 1, cpu_batch >= 1 and 0 < usable_fraction <= 1, "
            f"got {max_batch=} {cpu_batch=} {usable_fraction=}"
        )
    if available_bytes is None:
        return WindowResources(cpu_batch, False)
    shape = tuple(int(v) for v in image_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(f"image shape must be 3 positive voxel counts (Z, Y, X), got {shape=}")
    voxels = math.prod(shape)
    budget = available_bytes * usable_fraction - in_channels * voxels * 4
    accumulators = (num_classes + 1) * voxels * 4

    def largest_batch(reserved: float) -> int:
        fitting = 0
        for batch in range(1, max_batch + 1):
            if reserved + memory_for_batch(batch) > budget:
                break
            fitting = batch
        return fitting

    on_device = largest_batch(accumulators)
    if on_device >= 1:
        return WindowResources(on_device, True)
    on_host = largest_batch(0.0)
    if on_host == 0:
        logger.warning(
            "one window needs %.2f GB but only %.2f GB are usable; trying batch 1 anyway",
            memory_for_batch(1) / 1e9,
            budget / 1e9,
        )
    return WindowResources(max(on_host, 1), False)
