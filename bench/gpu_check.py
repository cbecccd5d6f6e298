"""Prove the GPU path on a real GPU: one unattended run that prints a table and writes
``OUT/gpu_check.json``.

Sections (each time-boxed; a failing one is recorded and the run goes on):

1. environment: device, memory, versions, and what ``autoseg plan`` detects by itself;
2. planning + memory: the Hippocampus dev set and a large phantom planned for 8, 24 and
   80 GB and the detected memory; each planned configuration trains 5 AMP steps and its
   estimate is compared with ``torch.cuda.max_memory_allocated``;
3. speed: iterations/s (plain, channels-last, ``torch.compile``), loader batches/s against
   them, TFLOP/s against the device peak, sliding-window seconds per case with and without
   mirroring;
4. end to end: ``autoseg demo --quick`` and a ``torchrun`` DDP fold with NCCL.

Without a usable CUDA device only the CPU-safe parts run (environment, planning and the
estimate columns); the GPU parts are reported as skipped and the exit status is 0.

    python bench/gpu_check.py --out OUT [--deadline 450] [--only memory,speed] [--quick]

The JSON is rewritten atomically after every section and measurement; a watchdog ends the
run (exit status 3) if it is still going 20 s after the deadline.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gpu_check_common import (
    Box,
    Context,
    SectionSkipped,
    error_text,
    stop_all_processes,
    use_this_checkout,
)
from gpu_check_report import SECTIONS, Report

RUN_ORDER = ("environment", "planning", "memory", "demo", "ddp", "speed")
"""Speed runs last: it is the one section that uses whatever time is left."""
CAPS: dict[str, float | None] = {
    "environment": 60.0,
    "planning": 120.0,
    "memory": 120.0,
    "demo": 150.0,
    "ddp": 120.0,
    "speed": None,
}
RESERVE = {"environment": 5, "planning": 20, "memory": 30, "demo": 60, "ddp": 45, "speed": 60}
"""Seconds kept back for each later section when a section's time box is set."""
GPU_ONLY = ("demo", "ddp", "speed")
GRACE_SECONDS = 20.0
DEFAULT_DEADLINE = 450.0

Section = Callable[[Context, Box, dict[str, Any], Callable[[], None]], str]


def _environment(ctx: Context, box: Box, data: dict[str, Any], save: Callable[[], None]) -> str:
    from gpu_check_env import environment

    info, warnings = environment(ctx.cuda)
    data.update(info, warnings=warnings)
    data["cuda_usable"] = ctx.cuda
    data["cuda_reason"] = ctx.options.cuda_reason
    return "ok"


def _sections() -> dict[str, Section]:
    from gpu_check_e2e import ddp, demo
    from gpu_check_memory import memory
    from gpu_check_plan import planning
    from gpu_check_speed_section import speed

    return {
        "environment": _environment,
        "planning": planning,
        "memory": memory,
        "speed": speed,
        "demo": demo,
        "ddp": ddp,
    }


def _names(text: str | None) -> set[str]:
    names = {n.strip() for n in (text or "").split(",") if n.strip()}
    unknown = names - set(SECTIONS)
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown section(s) {sorted(unknown)}; choose from {', '.join(SECTIONS)}"
        )
    return names


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (see ``--help``)."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("gpu_check_out"), help="output folder")
    p.add_argument("--scratch", type=Path, help="working folder (default: a temporary one)")
    p.add_argument("--keep-scratch", action="store_true", help="keep the temporary folder")
    p.add_argument(
        "--hippocampus",
        type=Path,
        help="Task04_Hippocampus_dev folder (default: ../shared/data/Task04_Hippocampus_dev "
        "beside the repository, else shared/data/... inside it; skipped when absent)",
    )
    p.add_argument("--phantom-shape", type=int, nargs=3, default=(256, 256, 256), metavar="N")
    p.add_argument("--phantom-cases", type=int, default=2, help="large phantom cases (2)")
    p.add_argument(
        "--targets", nargs="+", default=["8GB", "24GB", "80GB"], help="memory targets to plan"
    )
    p.add_argument("--deadline", type=float, default=DEFAULT_DEADLINE, help="total seconds")
    p.add_argument("--seconds", type=float, default=3.0, help="seconds timed per rate")
    p.add_argument("--steps", type=int, default=5, help="training steps per memory check")
    p.add_argument("--only", type=_names, default=set(), help="comma-separated sections")
    p.add_argument("--skip", type=_names, default=set(), help="comma-separated sections")
    p.add_argument("--quick", action="store_true", help="1.5 s rates, no compile, 1 dataset")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile jobs")
    p.add_argument("--cpu-only", action="store_true", help="act as if there were no GPU")
    p.add_argument(
        "--workers", type=int, default=min(8, os.cpu_count() or 1), help="planning processes"
    )
    args = p.parse_args(argv)
    if args.quick:
        args.seconds = min(args.seconds, 1.5)
    if args.steps < 2:
        p.error(f"--steps must be at least 2 (a warm-up and a measured step), got {args.steps}")
    return args


def selected_sections(args: argparse.Namespace) -> list[str]:
    """Sections to run, in run order (memory needs the planning rows)."""
    chosen = set(args.only or SECTIONS) - set(args.skip)
    if "memory" in chosen:
        chosen.add("planning")
    return [name for name in RUN_ORDER if name in chosen]


def cuda_usable(cpu_only: bool) -> tuple[bool, str]:
    """Whether torch can use a CUDA device here, and why not."""
    if cpu_only:
        return False, "--cpu-only"
    try:
        import torch
    except ImportError as err:
        return False, f"torch cannot be imported: {err}"
    if not torch.cuda.is_available():
        return False, f"torch.cuda.is_available() is False (torch {torch.__version__})"
    try:
        torch.zeros(1, device="cuda").sum().item()
    except Exception as err:  # a broken driver or a full device
        return False, f"CUDA is present but failed: {error_text(err)}"
    return True, torch.cuda.get_device_name(0)


def section_box(end: float, name: str, later: Sequence[str]) -> Box:
    """The time box of ``name``: its cap, minus what the later sections are promised."""
    limit = end - sum(RESERVE[n] for n in later)
    cap = CAPS[name]
    if cap is not None:
        limit = min(limit, time.monotonic() + cap)
    return Box(limit)


def run_section(report: Report, ctx: Context, name: str, box: Box) -> None:
    """Run one section, recording its status, duration and any error (never raises)."""
    record = report.begin(name, box.left())
    start = time.monotonic()
    try:
        status = _sections()[name](ctx, box, record["data"], report.write)
        reason = record["data"].pop("skipped_reason", None)
        if status == "skipped" and reason is None:
            reason = "no CUDA device: measurements skipped, estimates only"
        extra = {"skipped_reason": reason} if status == "skipped" else {}
        if status in ("error", "partial") and record["data"].get("error"):
            extra["error"] = str(record["data"]["error"])
        report.end(name, status, time.monotonic() - start, **extra)
    except SectionSkipped as err:
        report.end(name, "skipped", time.monotonic() - start, skipped_reason=str(err))
    except Exception as err:
        report.end(
            name,
            "error",
            time.monotonic() - start,
            error=error_text(err),
            traceback=traceback.format_exc()[-3000:],
        )
    if name == "environment":
        report.section(name)["warnings"] = record["data"].pop("warnings", [])


class Watchdog:
    """Ends the run if it outlives the deadline (a hung kernel, a stuck section)."""

    def __init__(self, when: float, fire: Callable[[], None]) -> None:
        self._when, self._fire = when, fire
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gpu-check-watchdog", daemon=True)

    def start(self) -> Watchdog:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        if not self._stop.wait(max(0.0, self._when - time.monotonic())):
            self._fire()


def _print_tables(report: Report) -> None:
    from gpu_check_tables import format_tables

    text = format_tables(report.snapshot())
    report.write_text("gpu_check.md", text + "\n")
    print(text, flush=True)


def _abort(report: Report) -> None:
    current = report.data.get("current_section")
    if current:
        report.section(current).update(status="aborted", error="deadline passed: watchdog")
    stop_all_processes()
    report.finish("aborted")
    _print_tables(report)
    os._exit(3)


def _notice(cuda: bool, reason: str) -> str | None:
    if cuda:
        return None
    return (
        f"No usable GPU ({reason}): the GPU parts (memory measurements, speed, demo on the "
        "GPU, torchrun/NCCL) were SKIPPED; only the CPU-safe parts ran (environment, "
        "planning, memory estimates)."
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check; 0 when it ran to the end (whatever it found), 3 when cut off."""
    args = parse_args(argv)
    use_this_checkout()
    end = time.monotonic() + args.deadline
    cuda, reason = cuda_usable(args.cpu_only)
    args.cuda_reason = reason
    own_scratch = args.scratch is None
    scratch = Path(tempfile.mkdtemp(prefix="gpu_check_")) if own_scratch else args.scratch
    scratch.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": [sys.executable, *sys.argv],
        "deadline_seconds": args.deadline,
        "gpu": cuda,
        "gpu_parts_skipped": not cuda,
        "notice": _notice(cuda, reason),
    }
    report = Report(args.out, meta)
    ctx = Context(options=args, out=args.out, scratch=scratch, cuda=cuda)
    watchdog = Watchdog(end + GRACE_SECONDS, lambda: _abort(report)).start()
    names = selected_sections(args)
    for name in SECTIONS:
        if name not in names:
            report.skip(name, "not selected (--only/--skip)")
    try:
        for index, name in enumerate(names):
            later = [n for n in names[index + 1 :] if cuda or n not in GPU_ONLY]
            box = section_box(end, name, later)
            if box.left() < 3.0:
                report.skip(name, "no time left before the deadline")
                continue
            run_section(report, ctx, name, box)
    finally:
        watchdog.stop()
        report.finish("done")
        if own_scratch and not args.keep_scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    _print_tables(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
