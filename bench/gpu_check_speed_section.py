"""gpu_check section 3 (orchestration): the speed measurements of
:mod:`gpu_check_speed`, in priority order, each skipped when the section's time box no longer
holds it (Hippocampus first, then the phantom; ``torch.compile`` runs last, in subprocesses).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from gpu_check_common import (
    JOBS_SCRIPT,
    Box,
    Context,
    DatasetInput,
    SectionSkipped,
    error_text,
    run_process,
)
from gpu_check_plan import find_inputs
from gpu_check_speed import (
    CONFIGS,
    compute_rate,
    fold_spec,
    guarded,
    host_to_device_gbps,
    loader_rates,
    matmul_tflops,
    prediction_seconds,
    skip_or_run,
    tflops,
)

Task = Callable[[Box], bool]
"""A measurement: runs (or records why not) within the box; True on success."""


def _plan(ctx: Context, dataset: DatasetInput, entry: dict[str, Any], specs: dict[str, Any]) -> Any:
    """``run_plan`` for the detected GPU (verify/fingerprint reused from planning)."""
    from autoseg.atomic import to_jsonable
    from autoseg.planner.workflow import run_plan
    from autoseg.workspace import Workspace

    start = time.monotonic()
    workspace = Workspace(ctx.scratch / f"work_{dataset.name}")
    report = run_plan(dataset.path, workspace, num_workers=ctx.options.workers)
    for name in CONFIGS:
        specs[name] = fold_spec(report.plans, workspace, name)
    specs["workspace"] = workspace
    families = entry.setdefault("families", {})
    for name in CONFIGS:
        plan = report.plans.configuration(name)
        families.setdefault(name, {}).update(
            {
                "patch_size": list(plan.patch_size),
                "batch_size": plan.batch_size,
                "precision": plan.precision,
                "gflops_per_iteration": plan.estimated_gflops_per_iteration,
                "train_cases": len(specs[name].train_ids),
                "val_cases": len(specs[name].val_ids),
            }
        )
    return {
        "seconds": time.monotonic() - start,
        "hardware": to_jsonable(report.plans.hardware),
        "fingerprint_reused": report.fingerprint_reused,
    }


def _compute(ctx: Context, spec: Any) -> dict[str, Any]:
    """Plain and channels-last iterations/s on the same batch."""
    seconds = ctx.options.seconds
    plain = compute_rate(spec, seconds, channels_last=False)
    batch = plain.pop("_batch")
    result = {"plain": plain}
    guarded(result, "channels_last", lambda: compute_rate(spec, seconds, batch, channels_last=True))
    result["channels_last"].pop("_batch", None)
    return result


def _compile(ctx: Context, specs: dict[str, Any], name: str, box: Box) -> dict[str, Any]:
    """``torch.compile`` iterations/s in a subprocess, killed at the end of the time box."""
    command = [sys.executable, str(JOBS_SCRIPT), "compile", "--work", str(specs["workspace"].root)]
    command += ["--config", name, "--seconds", str(ctx.options.seconds)]
    done = run_process(command, timeout=min(box.left() - 3.0, 300.0))
    if done.result is not None and done.returncode == 0:
        return {**done.result, "subprocess_seconds": done.seconds}
    reason = "timed out" if done.timed_out else f"exit status {done.returncode}"
    return {"error": f"compile job {reason}", **done.to_dict()}


def _derive(family: dict[str, Any], peaks: dict[str, float | None]) -> None:
    """Best rate, whether the GPU waits on data, and the achieved TFLOP/s."""
    compute = family.get("compute", {})
    rates = {k: v["per_second"] for k, v in compute.items() if "per_second" in v}
    loader = family.get("loader", {})
    if not rates or "gflops_per_iteration" not in family:
        return
    best = max(rates, key=rates.__getitem__)
    family["best_compute"] = {"variant": best, "per_second": rates[best]}
    family["tflops"] = tflops(family["gflops_per_iteration"], rates[best], peaks)
    plain = rates.get("plain")
    if plain and "loader_batches_per_second" in loader:
        family["loader_over_compute"] = loader["loader_batches_per_second"] / plain
        family["end_to_end_over_compute"] = loader["end_to_end_per_second"] / plain
        family["gpu_waits_on_data"] = loader["loader_batches_per_second"] < plain


def _plan_task(
    ctx: Context, dataset: DatasetInput, entry: dict[str, Any], specs: dict[str, Any]
) -> Task:
    def task(box: Box) -> bool:
        return skip_or_run(box, 25.0, entry, "plan", lambda: _plan(ctx, dataset, entry, specs))

    return task


def _family_tasks(
    ctx: Context, entry: dict[str, Any], specs: dict[str, Any], name: str, cases: int
) -> list[Task]:
    """Compute, loader and prediction of configuration ``name`` (after its plan)."""

    def run(key: str, need: float, work: Callable[[], Any]) -> Task:
        def task(box: Box) -> bool:
            family = entry.setdefault("families", {}).setdefault(name, {})
            if name not in specs:
                family[key] = {"skipped": "run_plan failed"}
                return False
            return skip_or_run(box, need, family, key, work)

        return task

    return [
        run("compute", 12.0, lambda: _compute(ctx, specs[name])),
        run("loader", 15.0, lambda: loader_rates(specs[name], ctx.options.seconds)),
        run("prediction", 10.0, lambda: prediction_seconds(specs[name], cases)),
    ]


def _compile_task(ctx: Context, specs: dict[str, Any], entry: dict[str, Any], name: str) -> Task:
    def task(box: Box) -> bool:
        compute = entry.get("families", {}).get(name, {}).get("compute")
        if name not in specs or not isinstance(compute, dict) or "plain" not in compute:
            return False
        if not box.has(45.0):
            compute["compile"] = {"skipped": "time box exhausted (needs ~45 s)"}
            return False
        compute["compile"] = _compile(ctx, specs, name, box)
        return "error" not in compute["compile"]

    return task


def speed(ctx: Context, box: Box, data: dict[str, Any], save: Callable[[], None]) -> str:
    """The speed section (see :mod:`gpu_check_speed`); returns its status."""
    if not ctx.cuda:
        raise SectionSkipped("no CUDA device: speed measurements need a GPU")
    import torch
    from gpu_check_env import peak_tflops

    find_inputs(ctx)
    sheet = peak_tflops(torch.cuda.get_device_name(0))
    data["peak"] = sheet
    guarded(data, "matmul_fp16_tflops", matmul_tflops)
    guarded(data, "host_to_device_GBps", host_to_device_gbps)
    measured = data["matmul_fp16_tflops"]
    peaks = {"datasheet": sheet["tflops"], "measured_matmul": measured}
    peaks["measured_matmul"] = measured if isinstance(measured, float) else None
    inputs = ctx.inputs[:1] if ctx.options.quick else ctx.inputs
    datasets: dict[str, Any] = {}
    data["datasets"] = datasets
    tasks: list[Task] = []
    compiles: dict[str, list[Task]] = {name: [] for name in CONFIGS}
    for dataset in inputs:  # in-process measurements of every dataset first
        entry: dict[str, Any] = {"description": dataset.description}
        datasets[dataset.name] = entry
        specs: dict[str, Any] = {}
        cases = 4 if dataset.name == "hippocampus" else 1
        tasks.append(_plan_task(ctx, dataset, entry, specs))
        for name in CONFIGS:
            tasks += _family_tasks(ctx, entry, specs, name, cases)
            compiles[name].append(_compile_task(ctx, specs, entry, name))
    if not ctx.options.no_compile and not ctx.options.quick:
        tasks += compiles["unet3d"] + compiles["deepmedic"]
    failures = 0
    for task in tasks:
        try:
            failures += not task(box)
        except Exception as err:  # a bug in the orchestration itself: record and go on
            data.setdefault("errors", []).append(error_text(err))
            failures += 1
        for entry in datasets.values():
            for family in entry.get("families", {}).values():
                _derive(family, peaks)
        save()
    return "partial" if failures else "ok"
