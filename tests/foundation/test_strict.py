"""The strict-config helpers: exact keys, unknown choices with the nearest one, converters."""

from __future__ import annotations

import numpy as np
import pytest

from autoseg import strict
from autoseg.errors import ConfigError, PlansError


def test_check_keys_names_unknown_and_missing() -> None:
    assert strict.check_keys("thing", {"a": 1, "b": 2}, ["a", "b"]) == {"a": 1, "b": 2}
    with pytest.raises(PlansError, match=r"unknown keys \['c'\], missing keys \['b'\]"):
        strict.check_keys("thing", {"a": 1, "c": 2}, ["a", "b"], PlansError)
    with pytest.raises(ConfigError, match="must be a JSON object with keys a, b, got list"):
        strict.check_keys("thing", [], ["a", "b"])


def test_choice_error_lists_the_choices_and_the_nearest() -> None:
    error = strict.choice_error("optimizer", "adamm", ["sgd", "adamw", "adam"])
    assert isinstance(error, ConfigError)
    assert str(error) == (
        "unknown optimizer 'adamm'; choose one of ['adam', 'adamw', 'sgd']; did you mean 'adam'?"
    )
    assert str(strict.choice_error("kind", "x", ["unet3d"])).endswith("['unet3d']")


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("unet3", "; did you mean 'unet3d'?"),
        ("zzz", ""),
        ("deepmedic", "; did you mean 'deepmedic'?"),
    ],
)
def test_did_you_mean(value: str, hint: str) -> None:
    assert strict.did_you_mean(value, ("unet3d", "deepmedic")) == hint


def test_converters_echo_the_value() -> None:
    assert strict.as_int("C", "n", np.int64(3), 1) == 3
    assert strict.as_int("C", "n", 4.0) == 4
    assert strict.as_bool("C", "flag", np.bool_(True)) is True
    assert strict.as_triple("C", "patch", [1, 2, 3]) == (1, 2, 3)
    assert strict.as_triple_tuple("C", "k", [[3, 3, 3], (1, 3, 3)]) == ((3, 3, 3), (1, 3, 3))
    assert strict.as_float_tuple("C", "p", [0, 0.5]) == (0.0, 0.5)
    with pytest.raises(ConfigError, match=r"C: `n` must be >= 1, got 0"):
        strict.as_int("C", "n", 0, 1)
    with pytest.raises(ConfigError, match=r"C: `n` must be an integer, got True"):
        strict.as_int("C", "n", True)
    with pytest.raises(ConfigError, match=r"C: `flag` must be true or false, got 1"):
        strict.as_bool("C", "flag", 1)
    with pytest.raises(ConfigError, match=r"C: `patch` needs 3 values \(Z, Y, X\), got \[1, 2\]"):
        strict.as_triple("C", "patch", [1, 2])
    with pytest.raises(ConfigError, match=r"C: `k\[1\]` must be a list, got 'x'"):
        strict.as_triple_tuple("C", "k", [[3, 3, 3], "x"])
