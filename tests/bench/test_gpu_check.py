"""bench/gpu_check.py on a machine without a GPU: the CPU-safe parts run (environment,
planning, the estimate columns), every GPU part is reported as skipped, and it exits 0.

The script runs as a subprocess, as on the GPU machine, with CUDA hidden and a small phantom
in place of its large default one (the Hippocampus rows come from the shared dev set when it
is there).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
HIPPOCAMPUS = REPO.parent / "shared" / "data" / "Task04_Hippocampus_dev"
SMALL_PHANTOM = ["--phantom-shape", "40", "48", "48", "--phantom-cases", "2", "--workers", "1"]
TARGETS = {"8GB": 8 * 10**9, "24GB": 24 * 10**9, "80GB": 80 * 10**9}


def run_check(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    """Run the script with CUDA hidden; return the process and the JSON it wrote."""
    python_path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": python_path}
    out = tmp_path / "out"
    command = [sys.executable, str(BENCH / "gpu_check.py"), "--out", str(out)]
    command += ["--scratch", str(tmp_path / "scratch"), *SMALL_PHANTOM, *args]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done, json.loads((out / "gpu_check.json").read_text())


def test_without_a_gpu_the_cpu_parts_run_and_the_gpu_parts_are_skipped(tmp_path: Path) -> None:
    start = time.monotonic()
    done, report = run_check(tmp_path, "--hippocampus", str(tmp_path / "absent"))
    assert time.monotonic() - start < 120
    assert report["status"] == "done"
    assert report["gpu"] is False and report["gpu_parts_skipped"] is True
    assert "SKIPPED" in report["notice"] and "SKIPPED" in done.stdout
    sections = report["sections"]
    assert sections["environment"]["status"] == "ok"
    assert sections["planning"]["status"] == "ok"
    for name in ("memory", "speed", "demo", "ddp"):
        assert sections[name]["status"] == "skipped", name
        assert "no CUDA device" in sections[name]["skipped_reason"], name
    env = sections["environment"]["data"]
    assert env["cuda_usable"] is False and env["torch"]
    assert env["autoseg_plan_detects"]["target"]["device"] == "cpu"

    planning = sections["planning"]["data"]
    assert "hippocampus" not in planning["datasets"]
    assert any("Hippocampus dev set not found" in note for note in planning["notes"])
    rows = sections["memory"]["data"]["rows"]
    assert {(r["target"], r["config"]) for r in rows} == {
        (t, c) for t in (*TARGETS, "detected") for c in ("unet3d", "unet2d", "deepmedic")
    }
    for row in rows:
        assert row["dataset"] == "phantom"
        assert row["estimate_bytes"] > 0 and row["target_bytes"] > 0
        assert row["planned_fill"] == pytest.approx(row["estimate_bytes"] / row["target_bytes"])
        assert row["measured"] is None and "no CUDA device" in row["measured_skipped"]
        assert row["limited_by"]["inferred"] is True
        if row["target"] in TARGETS:
            assert row["target_bytes"] == TARGETS[row["target"]]
            assert row["memory_source"] == "--gpu-memory" and row["precision"] == "amp"
        else:
            assert row["memory_source"] == "cpu-ram" and row["fill_goal"].startswith("n/a")
    # the small phantom is smaller than any GPU patch: every GPU plan is capped by it
    assert all(r["fill_goal"].startswith("capped") for r in rows if r["target"] in TARGETS)
    assert "## 2. Memory model" in done.stdout
    assert (tmp_path / "out" / "gpu_check.md").read_text().startswith("# autoseg GPU check")


def test_a_target_nothing_fits_is_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    _, report = run_check(
        tmp_path, "--only", "planning", "--targets", "1MB", "8GB", "--hippocampus", "absent"
    )
    planning = report["sections"]["planning"]
    assert planning["status"] == "partial"
    targets = planning["data"]["datasets"]["phantom"]["targets"]
    assert "PlansError" in targets["1MB"]["error"]
    assert {r["target"] for r in planning["data"]["rows"]} == {"8GB", "detected"}
    assert report["sections"]["memory"]["skipped_reason"] == "not selected (--only/--skip)"


@pytest.mark.skipif(not HIPPOCAMPUS.is_dir(), reason="shared Hippocampus dev set not present")
def test_the_hippocampus_dev_set_is_planned_in_place(tmp_path: Path) -> None:
    _, report = run_check(tmp_path, "--only", "planning", "--hippocampus", str(HIPPOCAMPUS))
    data = report["sections"]["planning"]["data"]
    assert data["datasets"]["hippocampus"]["cases"] == 130
    rows = {r["id"]: r for r in data["rows"]}
    unet = rows["hippocampus/8GB/unet3d"]
    assert unet["limited_by"]["patch"].startswith("median image shape")
    assert unet["fill_goal"].startswith("capped")
    assert not (HIPPOCAMPUS / "plans.json").exists()  # read in place, nothing written there


@pytest.mark.parametrize(
    ("name", "tflops"),
    [
        ("NVIDIA H200", 989.0),
        ("NVIDIA H200 NVL", 835.0),
        ("NVIDIA H100 80GB HBM3", 989.0),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA L40S", 362.0),
        ("NVIDIA L4", 121.0),
        ("NVIDIA A10", 125.0),
        ("Tesla V100-PCIE-16GB", 112.0),
        ("NVIDIA GeForce GTX 1080", None),
    ],
)
def test_peak_table(monkeypatch: pytest.MonkeyPatch, name: str, tflops: float | None) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    peak = importlib.import_module("gpu_check_env").peak_tflops(name)
    assert peak["tflops"] == tflops
    assert (peak["used"] == "unknown") == (tflops is None)


def test_sections_selection_and_a_subprocess_past_its_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    gpu_check = importlib.import_module("gpu_check")
    common = importlib.import_module("gpu_check_common")
    assert gpu_check.selected_sections(gpu_check.parse_args(["--only", "memory"])) == [
        "planning",
        "memory",
    ]
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--only", "memroy"])
    sleeper = (
        "import subprocess, sys, time; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    )
    done = common.run_process([sys.executable, "-c", sleeper], timeout=2.0)
    assert done.timed_out and done.returncode is None and done.seconds < 20
