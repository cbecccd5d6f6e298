"""Durations with units (``--time-budget``, ``AUTOSEG_DIST_TIMEOUT``)."""

from __future__ import annotations

import pytest

from autoseg.durations import parse_duration
from autoseg.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90m", 5400), ("2h", 7200), ("45s", 45), ("1h30m", 5400), ("1.5h", 5400), ("1d", 86400)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["90", "m", "2x", "0s", "-5m", "1h 30"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="duration"):
        parse_duration(text)
