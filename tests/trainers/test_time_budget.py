"""Time budgets: where a fold's length comes from, short epochs, the schedule's progress,
the end of the budget, and the final validation's reserve measured by the probe."""

from __future__ import annotations

import pytest

from autoseg.trainers.config import TrainConfig
from autoseg.trainers.session import BudgetTracker
from autoseg.trainers.state import TrainingState
from autoseg.trainers.time_budget import (
    DEFAULT_GPU_EPOCHS,
    RESERVE_MARGIN,
    after_epoch,
    initial_state,
    out_of_time,
    schedule_progress,
    shorten_epochs,
)


@pytest.mark.parametrize(
    ("config", "device", "expected"),
    [
        (TrainConfig(epochs=7), "cpu", (7, "--epochs", None, True)),
        (TrainConfig(time_budget_seconds=90.0), "cuda", (1000, "--time-budget", 90.0, False)),
        (
            TrainConfig(cpu_default_budget_seconds=120),
            "cpu",
            (1000, "cpu default budget", 120, False),
        ),
        (
            TrainConfig(cpu_default_budget_seconds=120),
            "mps",
            (1000, "cpu default budget", 120, False),
        ),
        (TrainConfig(), "cuda", (1000, "default", None, True)),
    ],
)
def test_where_the_epoch_count_comes_from(
    config: TrainConfig, device: str, expected: tuple[object, ...], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="autoseg")
    state = initial_state(config, device)
    got = (state.total_epochs, state.epochs_source, state.budget_seconds, state.epochs_decided)
    assert got == expected
    assert (state.iters_per_epoch, state.val_iters) == (250, 50)
    assert ("default budget of 2 minutes" in caplog.text) == (expected[1] == "cpu default budget")
    assert DEFAULT_GPU_EPOCHS == 1000


def test_initial_state_takes_the_epoch_length() -> None:
    state = initial_state(TrainConfig(epochs=1, iters_per_epoch=30, val_iters=4), "cpu")
    assert (state.iters_per_epoch, state.val_iters) == (30, 4)


def _shortening_session(state: TrainingState, config: TrainConfig, elapsed: float) -> object:
    from types import SimpleNamespace

    return SimpleNamespace(state=state, config=config, elapsed=lambda: elapsed)


def test_short_budgets_shorten_the_epochs_and_validation() -> None:
    state = initial_state(TrainConfig(time_budget_seconds=100.0), "cpu")
    session = _shortening_session(state, TrainConfig(time_budget_seconds=100.0), 0.0)
    # 1 s per iteration: 0.8 * 100 s holds 80 iterations, 8 per epoch for 10 epochs -> 10
    assert shorten_epochs(session, [5.0, 1.0, 1.0, 1.0, 1.0])  # type: ignore[arg-type]
    assert (state.iters_per_epoch, state.val_iters) == (10, 2)
    state = initial_state(TrainConfig(time_budget_seconds=100.0), "cpu")
    session = _shortening_session(state, TrainConfig(time_budget_seconds=100.0), 20.0)
    assert shorten_epochs(session, [0.1] * 5)  # type: ignore[arg-type]
    # 80 s left: floor(0.8 * 80 / (10 * 0.1)) = 64 iterations, round(50 * 64 / 250) = 13
    assert (state.iters_per_epoch, state.val_iters) == (64, 13)


@pytest.mark.parametrize(
    "config",
    [
        TrainConfig(time_budget_seconds=1e6),  # enough time for 250-iteration epochs
        TrainConfig(time_budget_seconds=100.0, iters_per_epoch=250),  # length given
        TrainConfig(epochs=3),  # no budget
    ],
)
def test_epochs_keep_their_length(config: TrainConfig) -> None:
    state = initial_state(config, "cpu")
    assert not shorten_epochs(_shortening_session(state, config, 0.0), [1.0] * 5)  # type: ignore[arg-type]
    assert state.iters_per_epoch == (config.iters_per_epoch or 250) and state.val_iters == 50


def test_validation_val_iters_given_are_kept_when_shortening() -> None:
    config = TrainConfig(time_budget_seconds=100.0, val_iters=7)
    state = initial_state(config, "cpu")
    assert shorten_epochs(_shortening_session(state, config, 0.0), [1.0] * 5)  # type: ignore[arg-type]
    assert (state.iters_per_epoch, state.val_iters) == (10, 7)


class _Clock:
    """A session's clock that the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _budget_session(tmp_path, budget: float | None, *, probe=None, shapes=None):  # type: ignore[no-untyped-def]
    import json
    from types import SimpleNamespace

    shapes = shapes or {"small": [10, 10, 10], "large": [20, 10, 10]}
    for case, shape in shapes.items():
        (tmp_path / f"{case}.json").write_text(json.dumps({"shape_after_resample": shape}))
    plan = SimpleNamespace(
        augmentation=SimpleNamespace(mirror_axes=(0, 1, 2)), inference_patch_size=(8, 8, 8)
    )
    if budget is None:
        state = TrainingState(10, "--epochs", iters_per_epoch=100)
    else:
        state = TrainingState(1000, "--time-budget", budget, iters_per_epoch=100)
        state.epochs_decided = False
    clock = _Clock()
    return SimpleNamespace(
        state=state,
        config=TrainConfig(val_mirroring=False),  # the rough reserve: one pass per case
        spec=SimpleNamespace(config_plan=plan, val_ids=tuple(shapes), data_dir=tmp_path),
        device=SimpleNamespace(type="cpu"),
        strategy=SimpleNamespace(inference_voxels=lambda plan, shape, step: int(sum(shape))),
        budget=BudgetTracker(probe=probe),
        save_seconds=0.5,
        plot_seconds=0.0,
        elapsed=clock,
        clock=clock,
    )


def test_progress_follows_the_epochs_without_a_budget(tmp_path) -> None:  # type: ignore[no-untyped-def]
    session = _budget_session(tmp_path, None)
    session.state.epoch = 3
    assert schedule_progress(session, 50) == pytest.approx(0.35)  # (3 + 50 / 100) / 10
    session.clock.now = 1e6  # time plays no part
    assert schedule_progress(session, 0) == pytest.approx(0.3)
    assert not out_of_time(session, 100.0)


def test_progress_follows_the_training_time_with_a_budget(tmp_path) -> None:  # type: ignore[no-untyped-def]
    session = _budget_session(tmp_path, 100.0)
    session.budget.reserve_seconds, session.budget.closing_seconds = 15.0, 5.0
    session.clock.now = 40.0
    assert schedule_progress(session, 7) == pytest.approx(0.5)  # 40 of the 80 s of training
    session.clock.now = 95.0
    assert schedule_progress(session, 0) == 1.0


def test_out_of_time_keeps_room_for_the_epoch_end_and_the_reserve(tmp_path) -> None:  # type: ignore[no-untyped-def]
    session = _budget_session(tmp_path, 100.0)
    session.budget.reserve_seconds, session.budget.closing_seconds = 20.0, 5.0
    session.clock.now = 73.0
    assert not out_of_time(session, 2.0)  # 73 + 2 + 5 + 20 = 100: just fits
    assert out_of_time(session, 2.5)


def test_the_probe_measures_one_case_and_the_reserve_follows_the_load(tmp_path) -> None:  # type: ignore[no-untyped-def]
    probed: list[str] = []
    slowdown = [1.0]

    def probe(case_id: str) -> float:
        probed.append(case_id)
        seconds = 3.0 * slowdown[0]  # validating the small case takes 3 s on a quiet machine
        session.clock.now += seconds
        return seconds

    session = _budget_session(tmp_path, 600.0, probe=probe)
    session.state.epoch, session.clock.now = 1, 10.0
    speeds = {"validation_seconds": 1.0, "seconds_per_voxel": 1e9}  # the rough rate is unused
    after_epoch(session, iteration_seconds=0.1, **speeds)  # type: ignore[arg-type]
    assert probed == ["small"]  # the lower median of two: the fewer outputs (30 against 40)
    # 3 s for 30 voxels -> 70 voxels in 7 s, plus the last checkpoint, with the margin
    assert session.budget.reserve_seconds == pytest.approx((7.0 + 0.5) * RESERVE_MARGIN)
    assert session.budget.closing_seconds == pytest.approx((1.0 + 0.5) * RESERVE_MARGIN)
    assert session.state.epochs_decided and not session.state.out_of_time
    # 587 s left after 13 s, less the reserve, at 100 x 0.1 s + closing per epoch
    epoch_seconds = 10.0 + session.budget.closing_seconds
    more = int((600.0 - 13.0 - session.budget.reserve_seconds) // epoch_seconds)
    assert session.state.total_epochs == 1 + more
    for epoch in (2, 3, 4):  # the machine gets twice as slow
        session.state.epoch = epoch
        after_epoch(session, iteration_seconds=0.2, **speeds)  # type: ignore[arg-type]
    assert probed == ["small"]  # measured once while many epochs are left
    assert session.budget.reserve_seconds == pytest.approx((14.0 + 0.5) * RESERVE_MARGIN)
    slowdown[0] = 2.0  # validation is twice as slow too: the measurements agree
    session.clock.now = 600.0 - session.budget.reserve_seconds - 7.0
    after_epoch(session, iteration_seconds=0.2, **speeds)  # type: ignore[arg-type]
    assert probed == ["small", "small"]  # near the end, measured again (6 s)
    assert session.budget.reserve_seconds == pytest.approx((14.0 + 0.5) * RESERVE_MARGIN)
    assert session.state.out_of_time and session.state.finished
    assert session.state.total_epochs == session.state.epoch


def test_a_probe_slowed_by_a_burst_is_measured_again_near_the_end(tmp_path) -> None:  # type: ignore[no-untyped-def]
    durations = [12.0, 3.0]  # a burst of other work during the first probe, then quiet

    def probe(case_id: str) -> float:
        seconds = durations.pop(0)
        session.clock.now += seconds
        return seconds

    session = _budget_session(tmp_path, 600.0, probe=probe)
    speeds = {"validation_seconds": 1.0, "seconds_per_voxel": 1e9}
    session.state.epoch, session.clock.now = 1, 10.0
    after_epoch(session, iteration_seconds=0.1, **speeds)  # type: ignore[arg-type]
    inflated = session.budget.reserve_seconds
    assert inflated == pytest.approx((28.0 + 0.5) * RESERVE_MARGIN)  # 12 s for 30 of 70 voxels
    # with under two epochs (11.6 s each) of training left, the case is validated again
    session.state.epoch, session.clock.now = 40, 600.0 - inflated - 20.0
    after_epoch(session, iteration_seconds=0.1, **speeds)  # type: ignore[arg-type]
    assert durations == []
    assert session.budget.reserve_seconds == pytest.approx((7.0 + 0.5) * RESERVE_MARGIN)
    assert not session.state.out_of_time  # the 22 s given back (less the 3 s probe) train
    assert session.state.total_epochs > session.state.epoch
    session.state.epoch += 1
    after_epoch(session, iteration_seconds=0.1, **speeds)  # type: ignore[arg-type]
    assert durations == []  # once only (another probe would have failed: nothing to pop)


def test_the_probe_takes_the_median_sized_case(tmp_path) -> None:  # type: ignore[no-untyped-def]
    probed: list[str] = []
    shapes = {"a": [30, 10, 10], "b": [10, 10, 10], "c": [20, 10, 10], "d": [40, 10, 10]}
    session = _budget_session(
        tmp_path, 600.0, probe=lambda case: probed.append(case) or 1.0, shapes=shapes
    )
    session.state.epoch, session.clock.now = 1, 10.0
    speeds = {"validation_seconds": 1.0, "seconds_per_voxel": 1e9}
    after_epoch(session, iteration_seconds=0.1, **speeds)  # type: ignore[arg-type]
    assert probed == ["c"]  # b 30, c 40, a 50, d 60 outputs: the lower median is c
    # 1 s for c's 40 outputs -> the 180 outputs of the four cases in 4.5 s (+ the checkpoint)
    assert session.budget.reserve_seconds == pytest.approx((4.5 + 0.5) * RESERVE_MARGIN)


def test_without_final_validation_the_reserve_is_the_last_checkpoint(tmp_path) -> None:  # type: ignore[no-untyped-def]
    session = _budget_session(tmp_path, 100.0, probe=None)
    session.state.epoch, session.clock.now = 1, 10.0
    after_epoch(session, iteration_seconds=0.1, validation_seconds=1.0, seconds_per_voxel=1.0)  # type: ignore[arg-type]
    assert session.budget.reserve_seconds == pytest.approx(0.5 * RESERVE_MARGIN)


@pytest.mark.parametrize(
    ("fold", "given", "expected"),
    [(0, None, True), ("all", None, False), ("all", True, True), (2, False, False)],
)
def test_fold_all_does_not_validate_on_its_training_cases_unless_asked(
    fold: int | str, given: bool | None, expected: bool
) -> None:
    assert TrainConfig(final_validation=given).validates(fold) is expected
