"""Progress off a terminal (timed plain lines), bars on one, and timestamped log lines."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator

import pytest

from autoseg import log
from autoseg.log import Progress, format_seconds, progress, set_verbosity

STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Messages of the ``autoseg`` logger at INFO, stderr taken for a log file."""
    monkeypatch.setattr(log, "stderr_is_terminal", lambda: False)
    root = logging.getLogger("autoseg")
    handler, level = _Lines(), root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler.lines
    root.removeHandler(handler)
    root.setLevel(level)


def test_off_a_terminal_a_line_comes_at_least_every_interval(lines: list[str]) -> None:
    with Progress("unet3d fold 0 epoch 1/2", 4, interval=0.05) as shown:
        for _ in range(4):
            time.sleep(0.06)  # each unit takes longer than the interval
            shown.update()
    beats = [line for line in lines if line.startswith("unet3d fold 0 epoch 1/2: ")]
    assert len(beats) >= 3, lines
    assert re.fullmatch(r".*: \d/4 it \(\d+%\), \d+s elapsed(, ~\d+s left)?", beats[0])
    assert lines[-1].startswith("unet3d fold 0 epoch 1/2: done, 4 it in ")


def test_a_single_long_step_still_gets_its_lines(lines: list[str]) -> None:
    with Progress("predict", 1, unit="case", interval=0.02):
        time.sleep(0.15)  # one case, no update in between
    assert sum(line.startswith("predict: 0/1 case (0%)") for line in lines) >= 3


def test_total_and_description_may_change(lines: list[str]) -> None:
    with Progress("epoch 1", 250, interval=0.03, summary=False) as shown:
        shown.update(5)
        shown.set_total(20)
        shown.set_description("unet3d fold 1 epoch 1/~12")
        time.sleep(0.1)
    assert any(line.startswith("unet3d fold 1 epoch 1/~12: 5/20 it (25%)") for line in lines)
    assert not any("done" in line for line in lines)  # summary=False


def test_short_work_and_quiet_logging_print_nothing(lines: list[str]) -> None:
    assert list(progress(range(3), desc="fingerprint")) == [0, 1, 2]
    logging.getLogger("autoseg").setLevel(logging.WARNING)
    with Progress("quiet", 2, interval=0.01):
        time.sleep(0.05)
    assert lines == []


def test_on_a_terminal_a_bar_and_no_lines(lines: list[str], capsys) -> None:
    with Progress("unet3d fold 0 epoch 1/2", 3, interval=0.01, terminal=True) as shown:
        time.sleep(0.05)
        shown.update(3)
    assert lines == []
    assert "unet3d fold 0 epoch 1/2" in capsys.readouterr().err  # tqdm's bar


def test_progress_closes_when_the_loop_stops_early(lines: list[str]) -> None:
    for item in progress(range(10), desc="cases"):
        if item == 2:
            break
    assert not [t for t in threading.enumerate() if t.name == "progress"]


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.4, "0s"), (45, "45s"), (425, "7m05s"), (7380, "2h03m")]
)
def test_format_seconds(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


@pytest.mark.parametrize(("terminal", "stamped"), [(False, True), (True, False)])
def test_timestamps_by_default_off_a_terminal(terminal, stamped, monkeypatch, capsys) -> None:
    monkeypatch.setattr(log, "stderr_is_terminal", lambda: terminal)
    root = logging.getLogger("autoseg")
    level, propagate = root.level, root.propagate
    try:
        set_verbosity(logging.INFO)
        log.get_logger("test").info("hello")
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert bool(STAMP.match(err)) == stamped and err.endswith("hello")
        set_verbosity(logging.INFO, timestamps=not stamped)  # the option wins
        log.get_logger("test").info("again")
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert bool(STAMP.match(err)) != stamped
    finally:
        set_verbosity(level or logging.WARNING, timestamps=False)
        root.propagate = propagate


def test_cli_timestamp_options(monkeypatch, capsys) -> None:
    from autoseg.cli import main

    monkeypatch.setattr(log, "stderr_is_terminal", lambda: True)
    root = logging.getLogger("autoseg")
    propagate = root.propagate
    try:
        assert main(["--timestamps", "train", "--work", "/nonexistent/w", "fold=0"]) == 2
        [handler] = [h for h in root.handlers if isinstance(h, log.TqdmLoggingHandler)]
        assert "%(asctime)s" in str(handler.formatter._fmt)  # type: ignore[union-attr]
        assert main(["--no-timestamps", "train", "--work", "/nonexistent/w", "fold=0"]) == 2
        assert "%(asctime)s" not in str(handler.formatter._fmt)  # type: ignore[union-attr]
        assert main(["--no-timestamps", "--timestamps", "train"]) == 2  # one or the other
    finally:
        set_verbosity(logging.WARNING, timestamps=False)
        root.propagate = propagate
    assert "not allowed with argument" in capsys.readouterr().err
