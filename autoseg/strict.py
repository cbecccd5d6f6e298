"""Strict parsing of JSON objects into frozen dataclasses: exactly the expected keys."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from autoseg.errors import AutosegError, ConfigError

__all__ = ["check_keys"]


def check_keys(
    what: str,
    data: Any,
    expected: Iterable[str],
    error: type[AutosegError] = ConfigError,
) -> Mapping[str, Any]:
    """Return ``data`` if it is a mapping with exactly the ``expected`` keys.

    Args:
        what: What is being parsed, for the message (e.g. "train config").
        data: The parsed JSON value.
        expected: The keys it must have, in their documented order.
        error: The AutosegError subclass to raise.

    Raises:
        error: naming the unknown and missing keys and listing the expected ones.
    """
    wanted = list(expected)
    if not isinstance(data, Mapping):
        raise error(
            f"{what} must be a JSON object with keys {', '.join(wanted)}, got {type(data).__name__}"
        )
    unknown = sorted(str(k) for k in data if k not in wanted)
    missing = [k for k in wanted if k not in data]
    if unknown or missing:
        raise error(
            f"{what}: unknown keys {unknown}, missing keys {missing}; "
            f"expected keys: {', '.join(wanted)}"
        )
    return data
