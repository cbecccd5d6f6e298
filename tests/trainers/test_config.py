"""TrainConfig: validation, strict JSON round trip, resume merging."""

from __future__ import annotations

import pytest

from autoseg.errors import ConfigError
from autoseg.trainers.config import TrainConfig


def test_defaults_follow_nnunet() -> None:
    config = TrainConfig()
    assert config.iters_per_epoch is None and config.val_iters is None  # 250 / 50 at run time
    assert config.optimizer is None and config.schedule == "poly"  # the plan's optimiser
    assert (config.weight_decay, config.poly_exponent, config.grad_clip_norm) == (3e-5, 0.9, 12.0)
    assert config.epochs is None and config.cpu_default_budget_seconds == 3600.0


def test_round_trip_is_strict() -> None:
    config = TrainConfig(epochs=3, lr=0.1, loss="ce", device="cpu")
    assert TrainConfig.from_dict(config.to_dict()) == config
    data = config.to_dict()
    data["learning_rate"] = 1.0
    del data["seed"]
    with pytest.raises(
        ConfigError, match=r"unknown keys \['learning_rate'\].*missing keys \['seed'\]"
    ):
        TrainConfig.from_dict(data)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"iters_per_epoch": 2.5}, "iters_per_epoch must be an integer"),
        ({"val_iters": 0}, "val_iters must be >= 1"),
        ({"lr": -1.0}, "lr must be a positive number"),
        ({"momentum": 1.0}, r"momentum \(--momentum\) must be in \[0, 1\), got 1.0$"),
        ({"optimizer": "adamm"}, "did you mean 'adam'"),
        ({"device": "gpu"}, "unknown device 'gpu'"),
        ({"loss": "focal"}, "unknown loss 'focal'"),
        (
            {"val_step_fraction": 0.0},
            r"validation step \(--val-step\) must be in \(0, 1\], got 0.0$",
        ),
        ({"weight_decay": float("nan")}, r"weight decay \(--weight-decay\) must be >= 0, got nan"),
        ({"num_workers": -1}, "num_workers must be >= 0"),
    ],
)
def test_invalid_values_raise(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**changes)  # type: ignore[arg-type]


def test_resume_keeps_hyper_parameters_and_takes_run_options() -> None:
    from autoseg.trainers.resume import resume_config

    stored = {"config": TrainConfig(lr=0.05, epochs=4, num_workers=0).to_dict(), "resolved": {}}
    merged = resume_config(stored, TrainConfig(lr=0.5, epochs=6, num_workers=2, device="cpu"))
    assert merged.lr == 0.05  # hyper-parameter of the checkpoint
    assert (merged.epochs, merged.num_workers, merged.device) == (6, 2, "cpu")
