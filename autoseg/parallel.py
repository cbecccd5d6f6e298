"""Run a function over cases in worker processes, in order, with a progress bar.

One helper for every per-case step (verify, fingerprint, preprocess, evaluate), so they
share the start method and the worker set-up. On Linux workers are forked (start-up in
milliseconds rather than the seconds a fresh interpreter importing torch costs); each
worker limits torch to one thread, since the parallelism is across cases.

Workers die with their parent: killing ``autoseg plan -np 8`` with SIGKILL once left its
workers waiting forever (about 235 MB each). On Linux each worker asks the kernel for a
SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``); elsewhere a thread in each
worker checks every second that its parent is still the one that started it.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TypeVar

from autoseg.log import progress

__all__ = ["WATCHDOG_SECONDS", "die_with_parent", "init_worker_process", "map_cases"]

T = TypeVar("T")
R = TypeVar("R")


_PR_SET_PDEATHSIG = 1
WATCHDOG_SECONDS = 1.0
"""How often a worker without ``PR_SET_PDEATHSIG`` checks that its parent lives."""


def die_with_parent(parent_pid: int) -> str:
    """Make this (worker) process end when the process ``parent_pid`` ends.

    Returns:
        ``"pdeathsig"`` (Linux: the kernel kills it) or ``"watchdog"`` (a polling thread).
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
                if os.getppid() != parent_pid:  # the parent died before prctl took effect
                    os._exit(1)
                return "pdeathsig"
        except (OSError, AttributeError):
            pass
    threading.Thread(target=_watch, args=(parent_pid,), daemon=True).start()
    return "watchdog"


def _watch(parent_pid: int) -> None:
    while True:
        if os.getppid() != parent_pid:
            os._exit(1)
        time.sleep(WATCHDOG_SECONDS)


def init_worker_process(parent_pid: int | None = None) -> None:
    """Set up a forked worker process: torch on one thread, and (given the parent's PID)
    ending with the parent (:func:`die_with_parent`).

    Besides avoiding oversubscription, this is what keeps a forked worker alive: a child
    forked after the parent ran multi-threaded torch ops inherits OpenMP's thread pool in a
    broken state, and its first parallel op (an ``avg_pool3d`` of DeepMedic's pathway
    inputs, say) waits forever. With one thread torch never enters that pool.
    """
    if parent_pid is not None:
        die_with_parent(parent_pid)
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
        workers, mp_context=_context(), initializer=init_worker_process, initargs=(os.getpid(),)
    ) as pool:
        futures: list[Future[R]] = [pool.submit(function, item) for item in items]
        try:
            for future in progress(futures, desc=desc, total=len(futures), enabled=show_progress):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()
