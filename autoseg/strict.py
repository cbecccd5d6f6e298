"""Strict parsing of JSON values into frozen dataclasses, and the errors it raises.

Every helper raises :class:`~autoseg.errors.ConfigError` (or the given AutosegError subclass)
naming what is parsed and the field, echoing the offending value, so a bad JSON entry or
option gives one clear line: :func:`check_keys` (exactly the expected keys),
:func:`choice_error` (an unknown enumeration value, with the nearest choice), and the
``as_*`` converters of the network configuration dataclasses.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from autoseg.errors import AutosegError, ConfigError

__all__ = [
    "as_bool",
    "as_float_tuple",
    "as_int",
    "as_int_tuple",
    "as_triple",
    "as_triple_tuple",
    "check_keys",
    "choice_error",
    "did_you_mean",
    "load_json",
]


def load_json(text: str | bytes) -> Any:
    """``json.loads``, with nesting too deep for the parser (``[[[[...]]]]``, a recursion
    error) raised as the :class:`json.JSONDecodeError` every caller already handles.
    """
    try:
        return json.loads(text)
    except RecursionError:
        shown = text if isinstance(text, str) else text.decode("utf-8", "replace")
        raise json.JSONDecodeError("nested too deeply to parse", shown, 0) from None


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


def did_you_mean(value: object, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the choice nearest to ``value``, or ``""`` if none is near.

    Example:
        >>> did_you_mean("unet3", ["unet3d", "deepmedic"])
        "; did you mean 'unet3d'?"
    """
    close = difflib.get_close_matches(str(value), list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def choice_error(what: str, value: object, choices: Iterable[str]) -> ConfigError:
    """A ConfigError for an unknown enumeration value, listing choices and the nearest one."""
    options = sorted(choices)
    return ConfigError(
        f"unknown {what} {value!r}; choose one of {options}{did_you_mean(value, options)}"
    )


def as_int(owner: str, name: str, value: Any, minimum: int | None = None) -> int:
    """Convert an integral value (Python or numpy int, integral float) to ``int``.

    Raises:
        ConfigError: for booleans, non-integral values or values below ``minimum``.
    """
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ConfigError(f"{owner}: `{name}` must be an integer, got {value!r}")
    result = int(value)
    if minimum is not None and result < minimum:
        raise ConfigError(f"{owner}: `{name}` must be >= {minimum}, got {result}")
    return result


def as_bool(owner: str, name: str, value: Any) -> bool:
    """Accept Python or numpy booleans only (no 0/1, no strings)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ConfigError(f"{owner}: `{name}` must be true or false, got {value!r}")


def _as_sequence(owner: str, name: str, value: Any) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise ConfigError(f"{owner}: `{name}` must be a list, got {value!r}")
    return tuple(value)


def as_int_tuple(owner: str, name: str, value: Any, minimum: int | None = None) -> tuple[int, ...]:
    """Convert a sequence of integers to a tuple of ``int`` (each checked by :func:`as_int`)."""
    items = _as_sequence(owner, name, value)
    return tuple(as_int(owner, f"{name}[{i}]", v, minimum) for i, v in enumerate(items))


def as_float_tuple(owner: str, name: str, value: Any) -> tuple[float, ...]:
    """Convert a sequence of real numbers to a tuple of ``float``."""
    items = _as_sequence(owner, name, value)
    result = []
    for i, v in enumerate(items):
        if isinstance(v, bool) or not hasattr(v, "__float__"):
            raise ConfigError(f"{owner}: `{name}[{i}]` must be a number, got {v!r}")
        result.append(float(v))
    return tuple(result)


def as_triple(
    owner: str, name: str, value: Any, minimum: int | None = None
) -> tuple[int, int, int]:
    """Convert a per-axis (Z, Y, X) triple of integers."""
    items = as_int_tuple(owner, name, value, minimum)
    if len(items) != 3:
        raise ConfigError(f"{owner}: `{name}` needs 3 values (Z, Y, X), got {list(items)}")
    return items[0], items[1], items[2]


def as_triple_tuple(
    owner: str, name: str, value: Any, minimum: int | None = None
) -> tuple[tuple[int, int, int], ...]:
    """Convert a sequence of per-axis triples (e.g. one kernel size per layer)."""
    items = _as_sequence(owner, name, value)
    return tuple(as_triple(owner, f"{name}[{i}]", v, minimum) for i, v in enumerate(items))
