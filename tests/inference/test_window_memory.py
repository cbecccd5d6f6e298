"""Tests for the memory-driven choice of window batch size and accumulation device."""

from __future__ import annotations

import logging

import pytest

from autoseg.errors import ConfigError
from autoseg.inference.window_memory import (
    CPU_WINDOW_BATCH,
    WindowResources,
    choose_batch_and_accumulation,
)

GB = 10**9


def per_window(bytes_per_window: int, fixed: int = 0):
    return lambda batch: fixed + batch * bytes_per_window


def test_cpu_uses_the_cpu_batch_and_host_accumulation():
    got = choose_batch_and_accumulation(None, per_window(GB), (200, 200, 200), 4)
    assert got == WindowResources(CPU_WINDOW_BATCH, False)
    batch, on_device = choose_batch_and_accumulation(
        None, per_window(GB), (8, 8, 8), 2, cpu_batch=1
    )
    assert (batch, on_device) == (1, False)


def test_plenty_of_gpu_memory_gives_max_batch_on_device():
    got = choose_batch_and_accumulation(80 * GB, per_window(GB), (100, 100, 100), 3, max_batch=4)
    assert got == WindowResources(4, True)


def test_batch_is_the_largest_that_fits_next_to_the_accumulators():
    shape, classes = (100, 100, 100), 3
    accumulators = (classes + 1) * 10**6 * 4  # 16 MB
    image = 10**6 * 4
    # Exactly room for 3 windows of 100 MB plus a 50 MB model next to image and accumulators.
    available = image + accumulators + 50 * 10**6 + 3 * 10**8
    got = choose_batch_and_accumulation(
        available, per_window(10**8, 50 * 10**6), shape, classes, usable_fraction=1.0
    )
    assert got == WindowResources(3, True)
    got = choose_batch_and_accumulation(
        available - 1, per_window(10**8, 50 * 10**6), shape, classes, usable_fraction=1.0
    )
    assert got == WindowResources(2, True)


def test_accumulation_moves_to_host_when_it_does_not_fit():
    shape, classes = (500, 500, 500), 10  # accumulators: 11 * 125e6 * 4 = 5.5 GB
    got = choose_batch_and_accumulation(6 * GB, per_window(GB), shape, classes, max_batch=8)
    # 6 GB * 0.9 - 0.5 GB image = 4.9 GB for windows: 4 of 1 GB, accumulating on the CPU.
    assert got == WindowResources(4, False)


def test_nothing_fits_falls_back_to_one_window_with_a_warning():
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("autoseg.inference.window_memory")
    logger.addHandler(handler)
    try:
        got = choose_batch_and_accumulation(GB, per_window(10 * GB), (10, 10, 10), 2)
    finally:
        logger.removeHandler(handler)
    assert got == WindowResources(1, False)
    assert any("one window needs" in r.getMessage() for r in records)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_batch": 0}, {"cpu_batch": 0}, {"usable_fraction": 0.0}, {"usable_fraction": 1.5}],
)
def test_invalid_settings_raise(kwargs):
    with pytest.raises(ConfigError):
        choose_batch_and_accumulation(GB, per_window(1), (4, 4, 4), 2, **kwargs)


def test_invalid_image_shape_raises():
    with pytest.raises(ConfigError, match="image shape"):
        choose_batch_and_accumulation(GB, per_window(1), (4, 4), 2)
