"""Forked worker processes: the shared set-up and the per-case map."""

from __future__ import annotations

import multiprocessing

import torch

from autoseg.parallel import init_worker_process, map_cases


def _pool_in_child(results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    init_worker_process()
    pooled = torch.nn.functional.avg_pool3d(torch.ones(1, 8, 90, 90, 90), 3)
    results.put((torch.get_num_threads(), float(pooled.mean())))


def test_a_worker_forked_after_multithreaded_torch_runs_torch_ops() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        square = torch.ones(64, 64, 64, 64)
        (square @ square).sum()  # the parent's OpenMP thread pool is running now
        context = multiprocessing.get_context("fork")
        results = context.Queue()
        child = context.Process(target=_pool_in_child, args=(results,))
        child.start()
        child.join(timeout=60)
        hung = child.is_alive()
        if hung:
            child.kill()
    finally:
        torch.set_num_threads(threads)
    assert not hung, "a forked worker hung in its first torch op"
    assert results.get(timeout=5) == (1, 1.0)


def _square(value: int) -> int:
    return value * value


def test_map_cases_keeps_the_input_order_across_workers() -> None:
    items = list(range(7))
    assert list(map_cases(_square, items, num_workers=2, desc="squares", show_progress=False)) == [
        v * v for v in items
    ]
