"""Durations written with units: ``90m``, ``2h``, ``45s``, ``1h30m``, ``1.5h``, ``1d``.

``--time-budget`` (see :mod:`autoseg.trainers.time_budget`) and the optional
``AUTOSEG_DIST_TIMEOUT`` (see :mod:`autoseg.trainers.distributed`) are read with it.
"""

from __future__ import annotations

import re

from autoseg.errors import ConfigError

__all__ = ["parse_duration"]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``90m``, ``2h``, ``45s``, ``1h30m`` or ``1.5h``.

    Raises:
        ConfigError: if the text is not a positive duration with units (s, m, h, d).
    """
    value = str(text).strip().lower().replace(" ", "")
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise ConfigError(
            f"invalid duration {text!r}; expected a number with a unit, e.g. 90m, 2h, 45s, 1h30m"
        )
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ConfigError(f"duration must be positive, got {text!r}")
    return seconds
