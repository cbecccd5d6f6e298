"""Torch threads on a busy CPU: measured, not assumed.

On a 2-core machine where other processes busy the cores, two torch threads ran a training
iteration up to ten times (and validation batches up to sixty times) slower than one: every
parallel region waits for its slowest thread, which shares a core with the other work. So
when training on a CPU without ``--threads``, :class:`ThreadTuner` now and then runs a few
iterations with one thread fewer (or one more, up to the count training started with) and
keeps whichever count was faster. A count that loses is tried again after twice as many
iterations (up to :data:`LONGEST_PERIOD`), so on a quiet machine the trials cost little;
when the load changes, the trial that wins switches back within a period.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

from autoseg.log import get_logger

__all__ = ["FIRST_PERIOD", "LONGEST_PERIOD", "MIN_GAIN", "TRIAL_ITERATIONS", "ThreadTuner"]

TRIAL_ITERATIONS = 3
"""Iterations run with the other thread count in a trial."""
FIRST_PERIOD = 30
"""Iterations from one trial to the next, at first (a trial is a period's last iterations)."""
LONGEST_PERIOD = 480
"""The period doubles after each lost trial, up to this."""
MIN_GAIN = 0.15
"""The other count must be this much faster (its median iteration) to be taken."""
_log = get_logger(__name__)


class ThreadTuner:
    """Chooses torch's intra-op thread count between 1 and ``maximum`` by measurement.

    Call :meth:`before` before each iteration (it sets the thread count for it) and
    :meth:`after` with the iteration's seconds.

    Args:
        maximum: The most threads to use (the count training started with).
        set_threads: Sets the count (``torch.set_num_threads``).
    """

    def __init__(self, maximum: int, set_threads: Callable[[int], None]) -> None:
        self.maximum = max(1, int(maximum))
        self.current = self.maximum
        self._set = set_threads
        self._period = FIRST_PERIOD
        self._count = 0  # iterations since the current period began
        self._running = self.current
        self._recent: list[float] = []  # the last iterations at the current count
        self._trial: list[float] = []

    def _other(self) -> int | None:
        if self.current > 1:
            return self.current - 1
        return self.current + 1 if self.current < self.maximum else None

    def before(self) -> None:
        """Set the thread count of the coming iteration."""
        other = self._other()
        trial = other is not None and self._count >= self._period - TRIAL_ITERATIONS
        wanted = other if trial and other is not None else self.current
        if wanted != self._running:
            self._set(wanted)
            self._running = wanted

    def after(self, seconds: float) -> None:
        """Record the iteration just run; end a trial by keeping the faster count."""
        if self._running == self.current:
            self._recent = [*self._recent[-(TRIAL_ITERATIONS * 2 - 1) :], seconds]
        else:
            self._trial.append(seconds)
        self._count += 1
        if self._count >= self._period:  # the trial (the period's last iterations) is over
            if self._trial and self._recent:
                self._decide()
            self._trial = []
            self._count = 0

    def _decide(self) -> None:
        trial, baseline = statistics.median(self._trial), statistics.median(self._recent)
        self._trial = []
        if trial < (1.0 - MIN_GAIN) * baseline:
            _log.info(
                "torch threads %d -> %d (%.2f against %.2f s per iteration: the cores are %s)",
                self.current,
                self._running,
                trial,
                baseline,
                "busy" if self._running < self.current else "free again",
            )
            self.current = self._running
            self._recent = []
            self._period = FIRST_PERIOD
        else:
            self._period = min(LONGEST_PERIOD, self._period * 2)
