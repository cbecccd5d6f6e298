"""Library logging through the ``autoseg`` logger; lines go through ``tqdm.write``.

Only the CLI prints results. Progress bars are tqdm and turned off with ``quiet``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

__all__ = ["TqdmLoggingHandler", "get_logger", "progress", "set_verbosity"]

T = TypeVar("T")
_ROOT = "autoseg"


class TqdmLoggingHandler(logging.Handler):
    """A handler that writes through ``tqdm.write`` so log lines do not break progress bars."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)  # stdout stays for results
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def get_logger(name: str) -> logging.Logger:
    """Return the logger ``autoseg.<name>`` (``name`` is usually ``__name__``)."""
    if name == _ROOT or name.startswith(_ROOT + "."):
        return logging.getLogger(name)
    return logging.getLogger(f"{_ROOT}.{name}")


def set_verbosity(level: int) -> None:
    """Attach one tqdm-aware handler to the ``autoseg`` logger and set its level."""
    root = logging.getLogger(_ROOT)
    if not any(isinstance(h, TqdmLoggingHandler) for h in root.handlers):
        handler = TqdmLoggingHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


def progress(
    iterable: Iterable[T], *, desc: str, total: int | None = None, enabled: bool = True
) -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar unless disabled, logging is quieter than INFO, or
    stderr is not a terminal (no bar fragments in log files and captured output)."""
    quiet = logging.getLogger(_ROOT).getEffectiveLevel() > logging.INFO
    disable = True if (not enabled) or quiet else None  # None: tqdm hides it off a TTY
    yield from tqdm(iterable, desc=desc, total=total, disable=disable, leave=False, unit="case")
