"""Library logging through the ``autoseg`` logger; lines go through ``tqdm.write``.

Only the CLI prints results. Progress is shown two ways (:class:`Progress`):

- on a terminal (stderr is a TTY): a tqdm bar, turned off with ``quiet``;
- elsewhere (a log file, ``nohup``, a SLURM job): plain log lines, one at least every
  :data:`HEARTBEAT_SECONDS` while the work goes on (a background thread writes them, so a
  single long step, say one case predicted for minutes, still gets its lines), and a last
  one when the work ends if any was written.

Log lines start with a timestamp (``2025-01-31 14:02:07``) when asked, by default when
stderr is not a terminal (:func:`set_verbosity`).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from tqdm import tqdm

__all__ = [
    "HEARTBEAT_SECONDS",
    "TIMESTAMP_FORMAT",
    "Progress",
    "TqdmLoggingHandler",
    "format_seconds",
    "get_logger",
    "progress",
    "set_verbosity",
    "stderr_is_terminal",
]

T = TypeVar("T")
_ROOT = "autoseg"
HEARTBEAT_SECONDS = 30.0
"""Off a terminal, the longest a piece of work with progress stays silent (seconds)."""
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"


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


_log = get_logger(__name__)


def stderr_is_terminal() -> bool:
    """Whether log lines and progress go to a terminal (stderr is a TTY)."""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def set_verbosity(level: int, *, timestamps: bool | None = None) -> None:
    """Attach one tqdm-aware handler to the ``autoseg`` logger and set its level.

    Args:
        level: Logging level of the ``autoseg`` logger.
        timestamps: Start each line with the date and time; None = when stderr is not a
            terminal (log files, nohup, SLURM).
    """
    root = logging.getLogger(_ROOT)
    handler = next((h for h in root.handlers if isinstance(h, TqdmLoggingHandler)), None)
    if handler is None:
        handler = TqdmLoggingHandler()
        root.addHandler(handler)
    stamped = not stderr_is_terminal() if timestamps is None else timestamps
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(message)s", datefmt=TIMESTAMP_FORMAT)
        if stamped
        else logging.Formatter("%(message)s")
    )
    root.setLevel(level)
    root.propagate = False


def format_seconds(seconds: float) -> str:
    """``45s``, ``7m05s``, ``2h03m``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """Progress of one piece of work: a tqdm bar on a terminal, timed log lines elsewhere.

    Use as a context manager (or call :meth:`close`). The description and the total may
    change while the work runs (an epoch count that is an estimate, a shortened epoch).

    Args:
        desc: What is being done, e.g. ``"unet3d fold 0 epoch 3/40"``.
        total: Units of work expected (None: unknown).
        unit: Name of a unit (``"it"``, ``"case"``, ``"batch"``).
        enabled: False shows nothing (so does logging quieter than INFO).
        interval: Seconds between plain lines off a terminal (default
            :data:`HEARTBEAT_SECONDS`).
        summary: Off a terminal, write a last line when the work ends, if any line was
            written (off for work whose end is logged anyway, such as an epoch).
        terminal: Show a bar (True) or plain lines (False); None = :func:`stderr_is_terminal`.
    """

    def __init__(
        self,
        desc: str,
        total: int | None = None,
        *,
        unit: str = "it",
        enabled: bool = True,
        interval: float | None = None,
        summary: bool = True,
        terminal: bool | None = None,
    ) -> None:
        self.desc, self.total, self.unit, self.count = desc, total, unit, 0
        self._start = time.monotonic()
        self._interval = HEARTBEAT_SECONDS if interval is None else float(interval)
        self._summary, self._lines = summary, 0
        self._bar: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        quiet = logging.getLogger(_ROOT).getEffectiveLevel() > logging.INFO
        if not enabled or quiet:
            return
        if stderr_is_terminal() if terminal is None else terminal:
            self._bar = tqdm(total=total, desc=desc, leave=False, unit=unit, file=sys.stderr)
        else:
            self._thread = threading.Thread(target=self._beat, name="progress", daemon=True)
            self._thread.start()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.count += n
        if self._bar is not None:
            self._bar.update(n)

    def set_total(self, total: int | None) -> None:
        self.total = total
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def set_description(self, desc: str) -> None:
        self.desc = desc
        if self._bar is not None:
            self._bar.set_description_str(desc)

    def line(self) -> str:
        """The plain progress line: ``desc: 120/250 it (48%), 1m05s elapsed, ~1m10s left``."""
        elapsed = time.monotonic() - self._start
        done = f"{self.count}" if self.total is None else f"{self.count}/{self.total}"
        text = f"{self.desc}: {done} {self.unit}"
        if self.total:
            text += f" ({100 * self.count / self.total:.0f}%)"
        text += f", {format_seconds(elapsed)} elapsed"
        if self.total and 0 < self.count < self.total:
            left = elapsed * (self.total - self.count) / self.count
            text += f", ~{format_seconds(left)} left"
        return text

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            self._lines += 1
            _log.info("%s", self.line())

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            if self._summary and self._lines:
                elapsed = format_seconds(time.monotonic() - self._start)
                _log.info("%s: done, %d %s in %s", self.desc, self.count, self.unit, elapsed)


def progress(
    iterable: Iterable[T],
    *,
    desc: str,
    total: int | None = None,
    enabled: bool = True,
    unit: str = "case",
) -> Iterator[T]:
    """Iterate over ``iterable`` showing its :class:`Progress` (a bar on a terminal, timed
    log lines elsewhere; nothing when disabled or logging is quieter than INFO)."""
    with Progress(desc, total, unit=unit, enabled=enabled) as shown:
        for item in iterable:
            yield item
            shown.update()
