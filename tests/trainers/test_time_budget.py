"""Time budgets: durations, where the epoch count comes from, short epochs, epochs that fit."""

from __future__ import annotations

import pytest

from autoseg.trainers.config import TrainConfig
from autoseg.trainers.state import TrainingState
from autoseg.trainers.time_budget import (
    DEFAULT_GPU_EPOCHS,
    epochs_for_budget,
    estimate_validation_seconds,
    final_validation_seconds,
    fit_epochs,
    initial_state,
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


def test_final_validation_seconds_counts_covered_voxels_and_mirrors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json
    from types import SimpleNamespace

    for case, shape in (("a", [10, 10, 10]), ("b", [20, 10, 10])):
        (tmp_path / f"{case}.json").write_text(json.dumps({"shape_after_resample": shape}))
    plan = SimpleNamespace(
        augmentation=SimpleNamespace(mirror_axes=(0, 1, 2)), inference_patch_size=(8, 8, 8)
    )
    session = SimpleNamespace(
        config=TrainConfig(val_mirroring=None, final_validation=True),
        spec=SimpleNamespace(config_plan=plan, val_ids=("a", "b", "missing"), data_dir=tmp_path),
        device=SimpleNamespace(type="cuda"),
        strategy=SimpleNamespace(inference_voxels=lambda plan, shape, step: int(sum(shape))),
    )
    # voxels 30 + 40 + 24 (no properties: the patch), 8 mirrored passes on a GPU, 2 s per case
    seconds = final_validation_seconds(session, 0.5)  # type: ignore[arg-type]
    assert seconds == pytest.approx((30 + 40 + 24) * 0.5 * 8 + 3 * 2.0)
    session.device = SimpleNamespace(type="cpu")  # no mirroring by default on the CPU
    assert final_validation_seconds(session, 0.5) == pytest.approx(94 * 0.5 + 6.0)  # type: ignore[arg-type]
    session.config = TrainConfig(final_validation=False)
    assert final_validation_seconds(session, 0.5) == 0.0  # type: ignore[arg-type]


def test_epochs_for_budget() -> None:
    # 100 s budget, 10 s used by one epoch, 8 s per epoch, 20 s of validation: 1 + 8 epochs
    assert epochs_for_budget(100, 10, 1, 8, 20, max_epochs=1000) == 9
    assert epochs_for_budget(100, 10, 1, 8, 20, max_epochs=5) == 5
    assert epochs_for_budget(10, 50, 3, 8, 20, max_epochs=1000) == 3  # over budget: stop now
    assert epochs_for_budget(10, 50, 0, 8, 20, max_epochs=1000) == 1


def test_estimate_validation_seconds() -> None:
    assert estimate_validation_seconds([1000, 3000], 1e-3, 8) == pytest.approx(32 + 2 * 2.0)


def _fake_session(state: object) -> object:
    from types import SimpleNamespace

    return SimpleNamespace(
        state=state,
        config=SimpleNamespace(final_validation=False),
        schedule=SimpleNamespace(total_epochs=0),
        save_seconds=0.0,
    )


def test_fit_epochs_decides_then_raises_early_and_lowers_late() -> None:
    import math

    from autoseg.trainers.history import EpochRecord

    def record(epoch: int, seconds: float) -> EpochRecord:
        return EpochRecord(epoch, 1.0, 1.0, (0.5,), 0.5, 0.01, seconds)

    state = TrainingState(1000, "--time-budget", 100.0, iters_per_epoch=100, epochs_decided=False)
    session = _fake_session(state)
    speed = {"iteration_seconds": 0.1, "validation_seconds": 1.0, "seconds_per_voxel": math.nan}
    state.history, state.epoch, state.elapsed_seconds = [record(0, 12.0)], 1, 12.0
    assert fit_epochs(session, **speed)  # type: ignore[arg-type]
    assert state.total_epochs == 1 + int(88 / (11 * 1.02)) == 8 and state.epochs_decided
    assert session.schedule.total_epochs == 8  # type: ignore[attr-defined]
    state.history.append(record(1, 5.0))
    state.epoch, state.elapsed_seconds = 2, 17.0
    assert fit_epochs(session, **speed)  # type: ignore[arg-type]
    assert state.total_epochs == 2 + int(83 / (5 * 1.02))  # raised: faster than planned
    state.history += [record(e, 20.0) for e in (2, 3, 4)]
    state.epoch, state.elapsed_seconds = 5, 77.0
    assert fit_epochs(session, **speed)  # type: ignore[arg-type]
    recent = (5 + 20 * 3) / 4 * 1.02
    assert state.total_epochs == 5 + int(23 / recent)  # lowered: slower than planned
    assert not fit_epochs(session, **speed)  # type: ignore[arg-type]
