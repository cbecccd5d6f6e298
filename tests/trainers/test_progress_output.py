"""What training prints off a terminal: timed lines naming configuration, fold and a 1-based
epoch while an epoch runs, and the epoch line."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest

from autoseg import log
from autoseg.trainers import steps
from autoseg.trainers.config import TrainConfig, TrainingRequest
from autoseg.trainers.cross_validation import run_training
from autoseg.workspace import Workspace


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    monkeypatch.setattr(log, "stderr_is_terminal", lambda: False)
    monkeypatch.setattr(log, "HEARTBEAT_SECONDS", 0.05)
    root = logging.getLogger("autoseg")
    handler, level = _Lines(), root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler.lines
    root.removeHandler(handler)
    root.setLevel(level)


def test_a_slow_epoch_prints_timed_lines(
    planned: Workspace, lines: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    original = steps.train_step

    def slow_step(*args, **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(0.12)
        return original(*args, **kwargs)

    monkeypatch.setattr(steps, "train_step", slow_step)
    config = TrainConfig(
        epochs=2, iters_per_epoch=3, val_iters=1, num_workers=0, device="cpu",
        final_validation=False,
    )  # fmt: skip
    run_training(planned, TrainingRequest(("unet3d",), (1,), config))
    first = [line for line in lines if line.startswith("unet3d fold 1 epoch 1/2: ")]
    second = [line for line in lines if line.startswith("unet3d fold 1 epoch 2/2: ")]
    assert first and second, lines
    assert any(" it (" in line and "elapsed" in line for line in first)
    assert not any("epoch 0" in line for line in lines)  # 1-based, as the epoch lines
    assert any(line.startswith("unet3d fold 1 epoch 2/2: train loss") for line in lines)


@pytest.mark.parametrize(
    ("decided", "budget", "label"),
    [
        (True, None, "deepmedic fold all epoch 3/40"),
        (True, 3600.0, "deepmedic fold all epoch 3/~40"),  # fitted to a budget: may change
        (False, 3600.0, "deepmedic fold all epoch 3"),  # not fitted yet: no total
    ],
)
def test_epoch_label(decided: bool, budget: float | None, label: str) -> None:
    from types import SimpleNamespace

    from autoseg.trainers.state import TrainingState

    state = TrainingState(40, "x", budget, epochs_decided=decided)
    session = SimpleNamespace(
        spec=SimpleNamespace(config_name="deepmedic", fold="all"), state=state
    )
    assert steps.epoch_label(session, 2) == label  # type: ignore[arg-type]
