"""ThreadTuner: the thread count follows measured iteration times, not the core count."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from autoseg.trainers import cpu_threads
from autoseg.trainers.cpu_threads import FIRST_PERIOD, LONGEST_PERIOD, ThreadTuner


def _run(tuner: ThreadTuner, iterations: int, seconds: Callable[[int, int], float]) -> list[int]:
    """Drive the tuner as train_epoch does; ``seconds(i, threads)`` times iteration i.
    Returns the thread count each iteration ran with."""
    used: list[int] = []
    for i in range(iterations):
        tuner.before()
        used.append(tuner._running)
        tuner.after(seconds(i, tuner._running))
    return used


def _tuner(maximum: int = 2) -> tuple[ThreadTuner, list[int]]:
    calls: list[int] = []
    return ThreadTuner(maximum, calls.append), calls


def test_busy_cores_drop_to_one_thread() -> None:
    tuner, calls = _tuner()
    # two threads are three times slower than one: the cores are shared with other work
    used = _run(tuner, FIRST_PERIOD, lambda i, n: 3.0 if n == 2 else 1.0)
    assert tuner.current == 1
    assert calls[0] == 1  # the trial set one thread
    assert used[: FIRST_PERIOD - cpu_threads.TRIAL_ITERATIONS] == [2] * (
        FIRST_PERIOD - cpu_threads.TRIAL_ITERATIONS
    )


def test_quiet_machine_keeps_its_threads_and_trials_get_rarer() -> None:
    tuner, _ = _tuner()
    used = _run(tuner, 2000, lambda i, n: 1.0 if n == 2 else 1.8)
    assert tuner.current == 2
    trials = sum(1 for n in used if n == 1)
    # periods 30, 60, 120, 240, 480, 480, ...: a few percent of the iterations at most
    assert trials <= 0.03 * len(used)
    assert tuner._period == LONGEST_PERIOD


def test_a_small_gain_is_not_taken() -> None:
    tuner, _ = _tuner()
    _run(tuner, 500, lambda i, n: 0.9 if n == 1 else 1.0)  # 10 % < MIN_GAIN
    assert tuner.current == 2


def test_threads_come_back_when_the_load_goes() -> None:
    tuner, calls = _tuner()

    def seconds(i: int, n: int) -> float:
        busy = i < 200
        if busy:
            return 3.0 if n == 2 else 1.0
        return 0.5 if n == 2 else 1.0

    used = _run(tuner, 400, seconds)
    assert tuner.current == 2
    assert 1 in used[:200] and used[-1] == 2
    assert calls[-1] == 2


def test_one_thread_never_trials() -> None:
    tuner, calls = _tuner(maximum=1)
    _run(tuner, 100, lambda i, n: 1.0)
    assert calls == [] and tuner.current == 1


@pytest.mark.parametrize("maximum", [3, 4])
def test_steps_down_one_thread_at_a_time(maximum: int) -> None:
    tuner, calls = _tuner(maximum)
    _run(tuner, FIRST_PERIOD * 2, lambda i, n: float(n))  # fewer threads always faster
    assert calls[0] == maximum - 1
    assert tuner.current < maximum
