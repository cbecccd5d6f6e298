"""gpu_check section 2b, the memory model against the truth: every planned configuration
(deduplicated) runs 5 real training steps under AMP on random inputs of the planned shapes.

The step is the trainer's own (:func:`autoseg.trainers.steps.train_step`: autocast fp16,
gradient scaling, clipping at norm 12, the family's loss and SGD settings) on a
:class:`~autoseg.trainers.session.Session` built from the plan without data loaders, with
cuDNN autotuning on as in training. Step 1 is the warm-up (autotuning); the peak of steps
2-5 is compared with the estimate:

- ``ratio_model`` = (estimate - fixed overhead) / ``torch.cuda.max_memory_allocated``: the
  analytic part of the model against what the caching allocator handed out (goal +-10 %);
- ``ratio_plan`` = estimate / process peak, where the process peak is
  ``max_memory_reserved`` plus the device memory used outside the allocator (CUDA context,
  library handles): the planner's whole figure against what the GPU had to hold.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable
from typing import Any

from gpu_check_common import Box, Context, device, error_text

MODEL_GOAL = 0.10
"""|estimate / measured - 1| the model should stay within."""


def _release() -> None:
    import torch

    gc.collect()
    torch.cuda.synchronize()
    torch.cuda.empty_cache()


def step_session(plans: Any, name: str, ctx: Context) -> Any:
    """A trainer Session for configuration ``name`` of ``plans``, without data loaders."""
    import torch

    from autoseg.networks import build_network
    from autoseg.precision import use_autocast, uses_grad_scaler
    from autoseg.seeding import seed_everything
    from autoseg.trainers.config import TrainConfig
    from autoseg.trainers.optim import make_optimizer, make_schedule
    from autoseg.trainers.registry import strategy_for
    from autoseg.trainers.session import FoldSpec, Session
    from autoseg.trainers.state import TrainingState
    from autoseg.workspace import Workspace

    plan = plans.configuration(name)
    config = TrainConfig(epochs=1, device=device())
    strategy = strategy_for(plan.network.kind)
    where = torch.device(device())
    amp = use_autocast(config.amp, where.type, plan.precision)
    seed_everything(0)
    module = build_network(plan.network).to(where).train()
    lr, momentum = plan.lr, strategy.defaults.momentum
    optimizer = make_optimizer(
        module.parameters(),
        plan.optimizer,
        lr=lr,
        momentum=momentum,
        weight_decay=config.weight_decay,
    )
    return Session(
        spec=FoldSpec(plans, name, 0, (), (), Workspace(ctx.scratch / "no_data")),
        config=config,
        resolved={"channels_last": False, "amp": amp},
        strategy=strategy,
        device=where,
        amp=amp,
        module=module,
        network=module,
        optimizer=optimizer,
        schedule=make_schedule("constant", optimizer, initial_lr=lr),
        scaler=torch.amp.GradScaler(where.type, enabled=uses_grad_scaler(amp, where.type)),
        loss=strategy.make_loss(plan, strategy.defaults.loss),
        state=TrainingState(1, "--epochs"),
    )


def _optimizer_bytes(optimizer: Any) -> int:
    import torch

    return sum(
        v.numel() * v.element_size()
        for state in optimizer.state.values()
        for v in state.values()
        if torch.is_tensor(v)
    )


def measure_steps(plans: Any, name: str, ctx: Context, steps: int) -> dict[str, Any]:
    """Run ``steps`` training steps; return the peaks (bytes) and seconds per step."""
    import torch

    from autoseg.diagnostics.memory_measure import make_training_batch
    from autoseg.networks import UNetConfig
    from autoseg.trainers.steps import train_step

    plan = plans.configuration(name)
    torch.backends.cudnn.benchmark = True
    _release()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    session = step_session(plans, name, ctx)
    try:
        inputs, targets = make_training_batch(
            plan.network, plan.patch_size, plan.batch_size, device=device()
        )
        net_inputs = inputs[0] if isinstance(plan.network, UNetConfig) else inputs
        start = time.monotonic()
        train_step(session, net_inputs, targets)  # warm-up: cuDNN autotuning
        torch.cuda.synchronize()
        warm_seconds = time.monotonic() - start
        warm_peak = torch.cuda.max_memory_allocated() - base
        torch.cuda.reset_peak_memory_stats()
        start = time.monotonic()
        for _ in range(steps - 1):
            train_step(session, net_inputs, targets)
        torch.cuda.synchronize()
        seconds = (time.monotonic() - start) / max(1, steps - 1)
        free, total = torch.cuda.mem_get_info()
        outside = int(total - free - torch.cuda.memory_reserved())
        result = {
            "steps": steps,
            "max_allocated_bytes": int(torch.cuda.max_memory_allocated() - base),
            "max_allocated_with_warmup_bytes": int(warm_peak),
            "max_reserved_bytes": int(torch.cuda.max_memory_reserved()),
            "outside_allocator_bytes": outside,
            "optimizer_state_bytes": _optimizer_bytes(session.optimizer),
            "seconds_per_step": seconds,
            "warmup_seconds": warm_seconds,
        }
    finally:
        del session
        _release()
    result["process_peak_bytes"] = result["max_reserved_bytes"] + max(0, outside)
    return result


def _compare(row: dict[str, Any], measured: dict[str, Any]) -> dict[str, Any]:
    """Add the ratios and goal checks to a measurement."""
    overhead = row["estimate_breakdown"]["overhead_bytes"]
    model = row["estimate_bytes"] - overhead
    ratio = model / measured["max_allocated_bytes"]
    measured["estimate_without_overhead_bytes"] = model
    measured["ratio_model"] = ratio
    measured["model_within_goal"] = abs(ratio - 1.0) <= MODEL_GOAL
    measured["ratio_plan"] = row["estimate_bytes"] / measured["process_peak_bytes"]
    measured["measured_fill"] = measured["process_peak_bytes"] / row["target_bytes"]
    measured["tflops_per_step"] = row["gflops_per_iteration"] / measured["seconds_per_step"] / 1e3
    return measured


def _unique(ctx: Context) -> dict[str, list[int]]:
    """Rows grouped by what is measured (network, patch, batch, precision), smallest first."""
    groups: dict[str, list[int]] = {}
    for index, (_, plans, name) in enumerate(ctx.planned):
        plan = plans.configuration(name)
        key = json.dumps(
            [plan.network.to_dict(), list(plan.patch_size), plan.batch_size, plan.precision],
            sort_keys=True,
        )
        groups.setdefault(key, []).append(index)
    return dict(sorted(groups.items(), key=lambda kv: ctx.planned[kv[1][0]][0]["estimate_bytes"]))


def _measure_group(ctx: Context, index: int, steps: int, device_bytes: int) -> dict[str, Any]:
    import torch

    row, plans, name = ctx.planned[index]
    if row["estimate_bytes"] > 0.97 * device_bytes:
        return {"skipped": f"estimate exceeds this GPU's {device_bytes / 1e9:.1f} GB"}
    try:
        return _compare(row, measure_steps(plans, name, ctx, steps))
    except torch.cuda.OutOfMemoryError as err:
        failure = {"error": error_text(err), "oom": True}
    _release()  # after the handler: the traceback no longer holds the session
    return failure


def memory(ctx: Context, box: Box, data: dict[str, Any], save: Callable[[], None]) -> str:
    """Measure every planned configuration (CPU: the estimate rows, measurements skipped).

    Fills ``data["rows"]``: the planning rows plus ``measured``. Returns the status.
    """
    rows = [dict(row) for row, _, _ in ctx.planned]
    data.update(rows=rows, steps=ctx.options.steps, goal=MODEL_GOAL)
    if not ctx.cuda:
        for row in rows:
            row["measured"] = None
            row["measured_skipped"] = "no CUDA device: estimate only, measurement skipped"
        return "skipped"
    import torch

    device_bytes = int(torch.cuda.get_device_properties(0).total_memory)
    failures = 0
    for indexes in _unique(ctx).values():
        first = rows[indexes[0]]["id"]
        if not box.has(8.0):
            measured: dict[str, Any] = {"skipped": "time box exhausted"}
        else:
            try:
                measured = _measure_group(ctx, indexes[0], ctx.options.steps, device_bytes)
            except Exception as err:
                measured = {"error": error_text(err)}
        failures += "error" in measured or "skipped" in measured
        for index in indexes:
            rows[index]["measured"] = dict(measured, measured_as=first)
        save()
    return "partial" if failures else "ok"
