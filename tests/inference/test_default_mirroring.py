"""``autoseg predict`` without --tta/--no-tta: mirrors on a CPU when the cost line's estimate
for a case with mirroring stays within CPU_MIRRORING_SECONDS, and says so."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from autoseg.cli import main
from autoseg.inference.cost import CPU_MIRRORING_SECONDS
from autoseg.planner.hardware_target import CpuSpeed
from autoseg.planner.plans import Plans
from autoseg.workspace import Workspace


def _workspace(
    root: Path, plans: Plans, gflops_per_second: float, factory: Callable[..., Workspace]
) -> Workspace:
    rates = {"fp32": gflops_per_second, "bf16": gflops_per_second}
    speed = CpuSpeed({"unet": rates, "deepmedic": rates}, 1, 0.0)
    plans = dataclasses.replace(
        plans, hardware=dataclasses.replace(plans.hardware, cpu_speed=speed)
    )
    return factory(root, plans, {"unet3d": (0, 1)})


def _cost_line(
    capsys: pytest.CaptureFixture[str], work: Workspace, images: Path, out: Path, *extra: str
) -> str:
    capsys.readouterr()
    argv = ["predict", "-i", str(images), "-o", str(out), "--work", str(work.root)]
    argv += ["--config", "unet3d", "--device", "cpu", "--threads", "1", "-np", "0", *extra]
    assert main(argv) == 0
    err = capsys.readouterr().err
    [line] = [line for line in err.splitlines() if "network passes per case" in line]
    return line


@pytest.mark.parametrize(
    ("speed", "extra", "mirrors", "reason"),
    [
        (1e3, (), 8, "test-time mirroring on: within 2 s per case here"),
        (1e-4, (), 1, "no test-time mirroring by default: ~"),
        (1e-4, ("--tta",), 8, None),  # asked for: no reason given
        (1e3, ("--no-tta",), 1, None),
    ],
)
def test_predict_mirrors_on_a_cpu_when_a_case_stays_cheap(
    planned: tuple[Path, Plans],
    test_images: Path,
    tmp_path: Path,
    workspace_factory: Callable[..., Workspace],
    capsys: pytest.CaptureFixture[str],
    speed: float,
    extra: tuple[str, ...],
    mirrors: int,
    reason: str | None,
) -> None:
    work = _workspace(tmp_path / "work", planned[1], speed, workspace_factory)
    line = _cost_line(capsys, work, test_images, tmp_path / "out", *extra)
    assert f"unet3d 2 fold(s) x {mirrors} mirror(s)" in line
    if reason is None:
        assert "mirroring on" not in line and "no test-time mirroring" not in line
    else:
        assert reason in line
    if reason is not None and mirrors == 1:
        assert f"s per case with it, over {CPU_MIRRORING_SECONDS:g} s" in line


@pytest.mark.parametrize("command", ["predict", "train"])
def test_the_help_states_the_limit_the_code_uses(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    main([command, "--help"])  # argparse's help: printed, status 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"within {CPU_MIRRORING_SECONDS:g} s" in text
    docs = Path(__file__).resolve().parents[2] / "docs"
    for page in ("cli.md", "prediction.md"):
        assert f"{CPU_MIRRORING_SECONDS:g} s" in (docs / page).read_text()
