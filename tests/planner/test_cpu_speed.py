"""The measured CPU speed: what it measures, its cache, and how the planner uses it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoseg.planner import cpu_speed
from autoseg.planner.cpu_speed import cpu_speed_for_machine, machine_signature
from autoseg.planner.cpu_speed import measure_cpu_speed as real_measure  # before the patch
from autoseg.planner.hardware import cuda_possible, detect_hardware
from autoseg.planner.heuristics import PlannerHeuristics
from autoseg.planner.planner import compute_budget_gflops, precision_for
from autoseg.planner.plans import CpuSpeed, HardwareTarget
from autoseg.precision import native_bf16_cpu


def _speed(unet: dict[str, float], deepmedic: dict[str, float], threads: int = 2) -> CpuSpeed:
    return CpuSpeed({"unet": unet, "deepmedic": deepmedic}, threads, 0.5)


def _cpu(speed: CpuSpeed) -> HardwareTarget:
    return HardwareTarget("cpu", "test", 8 * 10**9, "cpu-ram", 2, speed)


def test_measurement_covers_both_families_and_bf16_where_native() -> None:
    speed = real_measure(0.6)
    assert set(speed.gflops_per_thread) == {"unet", "deepmedic"}
    for per in speed.gflops_per_thread.values():
        assert per["fp32"] > 1.0  # GFLOP/s of one thread: any CPU of the last decade
        assert ("bf16" in per) == native_bf16_cpu()
    assert speed.parallel_efficiency == 0.6 and speed.source == "measured"


def test_rate_scales_with_threads_and_falls_back_to_fp32() -> None:
    speed = _speed({"fp32": 10.0, "bf16": 20.0}, {"fp32": 8.0}, threads=3)
    assert speed.effective_threads == pytest.approx(2.0)
    assert speed.rate("unet", "bf16") == pytest.approx(40.0)
    assert speed.rate("deepmedic", "bf16") == pytest.approx(16.0)  # bf16 not measured
    assert CpuSpeed.from_dict(json.loads(json.dumps(speed.to_dict()))) == speed


def test_planner_takes_bf16_only_where_it_pays() -> None:
    heuristics = PlannerHeuristics()  # cpu_bf16_min_speedup 1.2
    hardware = _cpu(_speed({"fp32": 10.0, "bf16": 20.0}, {"fp32": 10.0, "bf16": 11.0}))
    assert precision_for("unet3d", hardware, heuristics) == "bf16"
    assert precision_for("deepmedic", hardware, heuristics) == "fp32"
    budget = compute_budget_gflops("unet3d", "bf16", hardware, heuristics)
    assert budget == pytest.approx(20.0 * 1.5 * heuristics.cpu_seconds_per_iteration)
    gpu = HardwareTarget("cuda", "gpu", 8 * 10**9, "--gpu-memory", 2)
    assert precision_for("unet3d", gpu, heuristics) == "amp"
    assert compute_budget_gflops("unet3d", "amp", gpu, heuristics) is None


def test_a_faster_cpu_gets_a_bigger_iteration() -> None:
    from autoseg.planner.unet_topology import search_unet

    heuristics = PlannerHeuristics()
    sizes = []
    for rate in (10.0, 40.0):
        hardware = _cpu(_speed({"fp32": rate}, {"fp32": rate}))
        limit = compute_budget_gflops("unet3d", "fp32", hardware, heuristics)
        assert limit is not None

        def fits(config, patch, batch, limit=limit) -> bool:  # type: ignore[no-untyped-def]
            from autoseg.planner.compute import estimate_training_gflops

            return estimate_training_gflops(config, patch, batch) <= limit

        choice = search_unet(
            (1.0, 1.0, 1.0), (64, 64, 64), 10**8, 1, 3, heuristics, fits, on_cpu=True
        )
        sizes.append(choice.batch_size * choice.patch_size[0] * choice.patch_size[1])
    assert sizes[1] > sizes[0]


def test_cache_is_reused_on_this_machine_and_remeasured_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cpu_speed.json"
    calls = []

    def fake(efficiency: float) -> CpuSpeed:
        calls.append(efficiency)
        return _speed({"fp32": 10.0 + len(calls)}, {"fp32": 5.0})

    monkeypatch.setattr(cpu_speed, "measure_cpu_speed", fake)
    first = cpu_speed_for_machine(cache, 0.6)
    again = cpu_speed_for_machine(cache, 0.7)  # the efficiency is a heuristic, not measured
    assert len(calls) == 1 and again.gflops_per_thread == first.gflops_per_thread
    assert again.parallel_efficiency == 0.7
    data = json.loads(cache.read_text())
    assert data["machine"] == machine_signature()
    data["machine"]["cpu"] = "another CPU"
    cache.write_text(json.dumps(data))
    cpu_speed_for_machine(cache, 0.6)
    assert len(calls) == 2
    cache.write_text("{ damaged")
    cpu_speed_for_machine(cache, 0.6)
    assert len(calls) == 3


def test_cpu_plans_need_no_torch_for_the_cuda_check_without_gpu_nodes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from autoseg.planner import hardware as hardware_module

    monkeypatch.setattr(hardware_module.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(hardware_module.sys, "platform", "linux")
    assert cuda_possible() is False
    monkeypatch.setattr(hardware_module.glob, "glob", lambda pattern: ["/dev/nvidia0"])
    assert cuda_possible() is True
    fixed = _speed({"fp32": 10.0}, {"fp32": 5.0})
    target = detect_hardware("cpu", None, PlannerHeuristics(), cpu_speed=fixed)
    assert target.device == "cpu" and target.cpu_speed == fixed
