"""The tables of ``bench/vs_nnunet.py``: rows of both tools' figures, the load average."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Row", "format_table", "load", "machine", "say", "timed"]


@dataclass
class Row:
    """One table row: a figure of each tool (numbers get a ratio autoseg / nnU-Net)."""

    name: str
    autoseg: Any
    nnunet: Any
    fmt: str = "{:.2f}"
    note: str = ""
    ratio: bool = True

    def cells(self) -> tuple[str, str, str, str]:
        def show(value: Any) -> str:
            return self.fmt.format(value) if isinstance(value, (int, float)) else str(value)

        numeric = self.ratio and all(
            isinstance(v, (int, float)) for v in (self.autoseg, self.nnunet)
        )
        ratio = f"{self.autoseg / self.nnunet:.2f}" if numeric and self.nnunet else "-"
        return self.name, show(self.autoseg), show(self.nnunet), ratio


def format_table(rows: list[Row]) -> str:
    """A Markdown table of the rows."""
    lines = ["| figure | autoseg | nnU-Net | autoseg / nnU-Net |", "|---|---:|---:|---:|"]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    notes = [f"- {row.name}: {row.note}" for row in rows if row.note]
    return "\n".join(lines + (["", *notes] if notes else []))


def load() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds of ``fn()`` and its result."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def machine() -> str:
    """CPU model and core count, e.g. 'AMD EPYC 7B13, 2 cores'."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    names = [x.split(":", 1)[1].strip() for x in info.splitlines() if x.startswith("model name")]
    return f"{names[0] if names else platform.machine()}, {os.cpu_count()} cores"


def say(text: str) -> None:
    """Print ``text`` at once, after the time of day."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)
