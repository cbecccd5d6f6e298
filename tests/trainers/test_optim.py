"""Optimisers and schedules."""

from __future__ import annotations

import pytest
import torch

from autoseg.errors import ConfigError
from autoseg.trainers.optim import make_optimizer, make_schedule, poly_lr


def _optimizer(name: str = "sgd") -> torch.optim.Optimizer:
    return make_optimizer(
        [torch.nn.Parameter(torch.zeros(3))], name, lr=0.01, momentum=0.99, weight_decay=3e-5
    )


def test_poly_lr() -> None:
    assert poly_lr(0.01, 0.0) == 0.01
    assert poly_lr(0.01, 0.5) == pytest.approx(0.01 * 0.5**0.9)
    assert poly_lr(0.01, 1.0) == 0.0
    assert poly_lr(0.01, 1.5) == 0.0 and poly_lr(0.01, -1.0) == 0.01  # clipped to [0, 1]


def test_sgd_is_nesterov_and_others_exist() -> None:
    group = _optimizer().param_groups[0]
    assert group["nesterov"] and group["momentum"] == 0.99 and group["weight_decay"] == 3e-5
    assert isinstance(_optimizer("adamw"), torch.optim.AdamW)
    with pytest.raises(ConfigError, match="unknown optimizer"):
        _optimizer("lion")


def test_poly_schedule_sets_the_rate_from_the_progress_and_round_trips() -> None:
    opt = _optimizer()
    schedule = make_schedule("poly", opt, initial_lr=0.01)
    assert schedule.set_progress(0.5) == pytest.approx(poly_lr(0.01, 0.5))
    assert opt.param_groups[0]["lr"] == pytest.approx(poly_lr(0.01, 0.5))
    other = make_schedule("poly", _optimizer(), initial_lr=1.0)
    other.load_state_dict(schedule.state_dict())
    assert other.set_progress(0.25) == pytest.approx(poly_lr(0.01, 0.25))


def test_plateau_halves_after_patience() -> None:
    opt = _optimizer()
    schedule = make_schedule("plateau", opt, initial_lr=0.01, plateau_patience=1)
    for _ in range(4):
        schedule.set_progress(0.0)
        schedule.end_epoch(1.0)
    assert opt.param_groups[0]["lr"] < 0.01
    assert make_schedule("constant", opt, initial_lr=0.3).set_progress(0.9) == 0.3
