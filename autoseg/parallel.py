"""Run a function over cases in worker processes, in order, with a progress bar.

One helper for every per-case step (verify, fingerprint, preprocess, evaluate), so they
share the start method and the worker set-up. On Linux workers are forked (start-up in
milliseconds rather than the seconds a fresh interpreter importing torch costs); each
worker limits torch to one thread, since the parallelism is across cases.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TypeVar

from autoseg.log import progress

__all__ = ["init_worker_process", "map_cases"]

T = TypeVar("T")
R = TypeVar("R")


def init_worker_process() -> None:
    """Set up a forked worker process: torch on one thread.

    Besides avoiding oversubscription, this is what keeps a forked worker alive: a child
    forked after the parent ran multi-threaded torch ops inherits OpenMP's thread pool in a
    broken state, and its first parallel op (an ``avg_pool3d`` of DeepMedic's pathway
    inputs, say) waits forever. With one thread torch never enters that pool.
    """
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(1)


def _context() -> multiprocessing.context.BaseContext:
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    return multiprocessing.get_context(method)


def map_cases(
    function: Callable[[T], R],
    items: Sequence[T],
    *,
    num_workers: int,
    desc: str,
    show_progress: bool = True,
) -> Iterator[R]:
    """Yield ``function(item)`` for every item, in input order.

    With ``num_workers <= 1`` (or a single item) everything runs in this process. An
    exception raised by ``function`` propagates to the caller (remaining work is cancelled).
    ``function`` and the items must be picklable (a module-level function, or a
    ``functools.partial`` of one).
    """
    if num_workers <= 1 or len(items) <= 1:
        for item in progress(items, desc=desc, total=len(items), enabled=show_progress):
            yield function(item)
        return
    workers = min(num_workers, len(items))
    with ProcessPoolExecutor(
        workers, mp_context=_context(), initializer=init_worker_process
    ) as pool:
        futures: list[Future[R]] = [pool.submit(function, item) for item in items]
        try:
            for future in progress(futures, desc=desc, total=len(futures), enabled=show_progress):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()
