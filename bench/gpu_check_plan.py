"""gpu_check section 2a, planning (CPU work, runs everywhere): both datasets for each memory
target, with autoseg's own planning calls (``prepare_dataset``, ``detect_hardware``,
``plan_dataset``; the ``autoseg plan`` path without preprocessing), one row per configuration.

What limited a configuration is not recorded in ``plans.json``; :func:`limits` infers it
from the plan, the heuristics and the memory model: the configuration is *memory-bound* when
its patch was shrunk from the starting patch or the next batch would not fit the target
times ``memory_safety_margin``; otherwise it is *capped* by the dataset (the patch covers
the median image, the batch is at the dataset-fraction cap) or by a heuristic maximum.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gpu_check_common import REPO, Box, Context, DatasetInput, error_text

HIPPOCAMPUS_CANDIDATES = (
    REPO.parent / "shared" / "data" / "Task04_Hippocampus_dev",
    REPO / "shared" / "data" / "Task04_Hippocampus_dev",
)
FILL_GOAL = (0.80, 0.95)
"""Goal for a memory-bound configuration: estimate / target within this range."""


def find_hippocampus(option: Path | None) -> tuple[Path | None, str]:
    """The Hippocampus folder (``--hippocampus``, else the shared data beside the repo)."""
    candidates = (option,) if option is not None else HIPPOCAMPUS_CANDIDATES
    for path in candidates:
        if path is not None and (path / "dataset.json").is_file():
            return path.resolve(), f"Task04_Hippocampus_dev (MSD), read in place at {path}"
    tried = ", ".join(str(p) for p in candidates if p is not None)
    return None, f"Hippocampus dev set not found (tried {tried}): its rows are skipped"


def make_phantom(scratch: Path, shape: Sequence[int], cases: int) -> tuple[Path, str]:
    """Generate (or reuse, in the same scratch folder) the large single-channel phantom."""
    from autoseg.data.synthetic import PhantomSpec, generate_phantom_dataset

    spec = PhantomSpec(
        num_train_cases=cases,
        num_test_cases=0,
        channels=("T1",),
        spacing="iso",
        base_shape=(int(shape[0]), int(shape[1]), int(shape[2])),
        name="GpuCheckPhantom",
        seed=0,
    )
    shape_text = "x".join(str(v) for v in spec.base_shape)
    root = scratch / f"phantom_{shape_text}_{cases}"
    start = time.monotonic()
    if not (root / "dataset.json").is_file():
        generate_phantom_dataset(root, spec, overwrite=True)
    seconds = time.monotonic() - start
    return root, f"phantom: {cases} cases of ~{shape_text} voxels, 1 mm iso, T1 ({seconds:.1f} s)"


def targets_from_options(texts: Sequence[str]) -> list[tuple[str, int | None]]:
    """``[(label, bytes)]`` for each ``--targets`` size (parsed as ``--gpu-memory`` is), then
    ``("detected", None)``."""
    from autoseg.cli.options import parse_size

    return [(text, parse_size(text)) for text in texts] + [("detected", None)]


def _median_shape(fingerprint: Any, spacing: Sequence[float]) -> tuple[int, int, int]:
    """The median image shape at the target spacing: the planner's own rule
    (``planner.plan_dataset``), repeated here to explain the plan."""
    import numpy as np

    sizes = (
        np.asarray(fingerprint.shapes_after_crop)
        * np.asarray(fingerprint.spacings)
        / np.asarray(spacing)
    )
    median = np.median(sizes, axis=0)
    return (round(median[0]), round(median[1]), round(median[2]))


def _fits(plan: Any, hardware: Any, heuristics: Any, batch: int) -> bool:
    """The planner's test (``planner._budget``) for the plan's network and patch at ``batch``."""
    from autoseg.planner.compute import estimate_training_gflops
    from autoseg.planner.memory import estimate_training_memory

    limit = hardware.memory_target_bytes * heuristics.memory_safety_margin
    net, patch = plan.network, plan.patch_size
    if estimate_training_memory(net, patch, batch, plan.precision) > limit:
        return False
    budget = _budget(plan, hardware, heuristics)
    return budget is None or estimate_training_gflops(net, patch, batch) <= budget


def _budget(plan: Any, hardware: Any, heuristics: Any) -> float | None:
    """The plan's compute budget per iteration (GFLOP; None on a GPU)."""
    from autoseg.planner.planner import compute_budget_gflops

    return compute_budget_gflops(plan.network.kind, plan.precision, hardware, heuristics)


def _unet_patch_limit(plan: Any, hardware: Any, h: Any, median: tuple[int, int, int]) -> str:
    from autoseg.planner.unet_topology import (
        initial_patch_size,
        initial_slice_patch_size,
        unet_config_for_patch,
    )

    net = plan.network
    axis = net.slice_axis  # the 2D U-Net's, else None
    if axis is None:
        first = initial_patch_size(plan.target_spacing, median, h)
    else:
        first = initial_slice_patch_size(plan.target_spacing, median, axis, h)
    _, padded = unet_config_for_patch(
        first,
        plan.target_spacing,
        net.in_channels,
        net.num_classes,
        h,
        on_cpu=hardware.device == "cpu",
        slice_axis=axis,
    )
    if tuple(plan.patch_size) != tuple(padded):
        return "memory" if _budget(plan, hardware, h) is None else "memory/compute"
    if any(a == m for a, m in zip(first, median)):
        return f"median image shape {list(median)}"
    return "unet_initial_patch_voxels"


def _deepmedic_segment_limit(plan: Any, hardware: Any, h: Any, median: tuple[int, int, int]) -> str:
    from autoseg.planner.deepmedic_topology import segment_for_edge

    largest = segment_for_edge(h.deepmedic_max_train_output, plan.target_spacing, median)
    if tuple(plan.patch_size) != tuple(largest):
        return "memory" if _budget(plan, hardware, h) is None else "memory/compute"
    unclipped = segment_for_edge(h.deepmedic_max_train_output, plan.target_spacing)
    if tuple(unclipped) != tuple(largest):
        return f"median image shape {list(median)}"
    return "deepmedic_max_train_output"


def limits(
    plan: Any, hardware: Any, heuristics: Any, median: tuple[int, int, int]
) -> dict[str, Any]:
    """What limited the patch and the batch of a configuration (inferred; see the module)."""
    unet = plan.network.kind != "deepmedic"
    two_d = plan.network.kind == "unet2d"
    if unet:
        patch = _unet_patch_limit(plan, hardware, heuristics, median)
        largest_batch = (
            heuristics.unet2d_max_batch_size if two_d else heuristics.unet_max_batch_size
        )
        cap_name = "unet2d_max_batch_size" if two_d else "unet_max_batch_size"
    else:
        patch = _deepmedic_segment_limit(plan, hardware, heuristics, median)
        largest_batch = heuristics.deepmedic_max_batch_size
        cap_name = "deepmedic_max_batch_size"
    if plan.batch_size >= largest_batch:
        batch = cap_name
    elif not _fits(plan, hardware, heuristics, plan.batch_size + 1):
        batch = "memory" if _budget(plan, hardware, heuristics) is None else "memory/compute"
    else:
        share = heuristics.unet_max_dataset_fraction
        batch = f"unet_max_dataset_fraction (batch x patch <= {share:.0%} of the dataset's voxels)"
        batch = batch if unet else "unknown"
    compute = _budget(plan, hardware, heuristics)
    if compute is not None:  # a CPU plan: compute binds, not memory
        share = plan.estimated_gflops_per_iteration / compute
        return {
            "patch": patch,
            "batch": batch,
            "memory_bound": False,
            "cpu_plan": True,
            "compute_share": share,
            "inferred": True,
        }
    bound = patch.startswith("memory") or batch.startswith("memory")
    return {"patch": patch, "batch": batch, "memory_bound": bound, "inferred": True}


def _network_text(network: Any) -> str:
    if network.kind != "deepmedic":
        feats = "-".join(str(f) for f in network.features_per_stage)
        kind = "2D U-Net" if network.kind == "unet2d" else "U-Net"
        return f"{kind} {feats} ({network.num_stages} stages)"
    subs = ",".join("x".join(str(v) for v in s.factor) for s in network.subsampled)
    fc = "-".join(str(f) for f in network.fc_features)
    normal = "-".join(str(f) for f in network.normal.features)
    return f"DeepMedic {normal}, subsampled {subs or 'none'}, FC {fc}"


def _goal(fill: float, bound: dict[str, Any]) -> str:
    low, high = FILL_GOAL
    if bound.get("cpu_plan"):
        return f"n/a: CPU plan, {bound['compute_share']:.0%} of its compute budget"
    if not bound["memory_bound"]:
        return f"capped (patch: {bound['patch']}; batch: {bound['batch']})"
    if fill < low:
        return f"below {low:.0%}"
    return "ok" if fill <= high else f"above {high:.0%}"


def configuration_row(
    dataset: str, label: str, plans: Any, name: str, median: tuple[int, int, int]
) -> dict[str, Any]:
    """The JSON row of one planned configuration (estimate, target, fill, what limited it)."""
    from autoseg.atomic import to_jsonable
    from autoseg.planner.memory import estimate_training_breakdown

    plan, hardware, heuristics = plans.configuration(name), plans.hardware, plans.heuristics
    breakdown = estimate_training_breakdown(
        plan.network, plan.patch_size, plan.batch_size, plan.precision
    )
    target = int(hardware.memory_target_bytes)
    fill = plan.estimated_memory_bytes / target
    bound = limits(plan, hardware, heuristics, median)
    return {
        "id": f"{dataset}/{label}/{name}",
        "dataset": dataset,
        "target": label,
        "target_bytes": target,
        "memory_source": hardware.memory_source,
        "target_device": hardware.device,
        "config": name,
        "network": _network_text(plan.network),
        "patch_size": list(plan.patch_size),
        "batch_size": plan.batch_size,
        "precision": plan.precision,
        "estimate_bytes": int(plan.estimated_memory_bytes),
        "estimate_breakdown": to_jsonable(breakdown),
        "limit_bytes": int(target * heuristics.memory_safety_margin),
        "planned_fill": fill,
        "gflops_per_iteration": plan.estimated_gflops_per_iteration,
        "limited_by": bound,
        "fill_goal": _goal(fill, bound),
    }


def plan_dataset_targets(
    ctx: Context, dataset: DatasetInput, targets: Sequence[tuple[str, int | None]]
) -> dict[str, Any]:
    """Fingerprint ``dataset`` once and plan it for every target; rows go to ``ctx.planned``."""
    from autoseg.planner.hardware import detect_hardware
    from autoseg.planner.heuristics import load_heuristics
    from autoseg.planner.planner import plan_dataset
    from autoseg.planner.workflow import prepare_dataset
    from autoseg.workspace import Workspace

    start = time.monotonic()
    workspace = Workspace(ctx.scratch / f"work_{dataset.name}")
    data, fingerprint, _ = prepare_dataset(dataset.path, workspace, num_workers=ctx.options.workers)
    heuristics = load_heuristics(None)
    info: dict[str, Any] = {
        "path": str(dataset.path),
        "description": dataset.description,
        "cases": len(fingerprint.cases),
        "fingerprint_seconds": round(time.monotonic() - start, 2),
        "targets": {},
    }
    for label, size in targets:
        try:
            hardware = detect_hardware(None, size, heuristics)
            plans = plan_dataset(
                fingerprint, heuristics, hardware, regions=data.regions, use_roi=data.has_roi
            )
        except Exception as err:  # PlansError (nothing fits) and anything unexpected
            info["targets"][label] = {"error": error_text(err)}
            continue
        spacing = plans.configuration("unet3d").target_spacing
        median = _median_shape(fingerprint, spacing)
        info["targets"][label] = {"target_bytes": hardware.memory_target_bytes, "ok": True}
        info["median_shape"] = list(median)
        info["target_spacing"] = list(spacing)
        for name in plans.configurations:
            own = plans.configuration(name).target_spacing  # the low-resolution stage's own
            at = median if tuple(own) == tuple(spacing) else _median_shape(fingerprint, own)
            row = configuration_row(dataset.name, label, plans, name, at)
            ctx.planned.append((row, plans, name))
    return info


def find_inputs(ctx: Context) -> None:
    """Fill ``ctx.inputs`` once: the Hippocampus dev set if found, and the large phantom."""
    if ctx.inputs:
        return
    options = ctx.options
    hippocampus, note = find_hippocampus(options.hippocampus)
    ctx.notes.append(note)
    if hippocampus is not None:
        ctx.inputs.append(DatasetInput("hippocampus", hippocampus, note))
    phantom, description = make_phantom(ctx.scratch, options.phantom_shape, options.phantom_cases)
    ctx.inputs.append(DatasetInput("phantom", phantom, description))


def planning(ctx: Context, box: Box, data: dict[str, Any], save: Callable[[], None]) -> str:
    """Find or generate the datasets, then plan each for every target; returns the status."""
    find_inputs(ctx)
    targets = targets_from_options(ctx.options.targets)
    datasets: dict[str, Any] = {}
    data.update(
        datasets=datasets,
        notes=list(ctx.notes),
        targets=[{"label": label, "bytes": size} for label, size in targets],
    )
    failed = False
    for dataset in ctx.inputs:
        if not box.has(1.0):
            datasets[dataset.name] = {"path": str(dataset.path), "error": "time box exhausted"}
            failed = True
            continue
        try:
            datasets[dataset.name] = plan_dataset_targets(ctx, dataset, targets)
        except Exception as err:
            datasets[dataset.name] = {"path": str(dataset.path), "error": error_text(err)}
        failed = (
            failed
            or "error" in datasets[dataset.name]
            or any("error" in t for t in datasets[dataset.name].get("targets", {}).values())
        )
        save()
    data["rows"] = [row for row, _, _ in ctx.planned]
    data["fill_summary"] = fill_summary(data["rows"])
    return "partial" if failed else "ok"


def fill_summary(rows: Sequence[dict[str, Any]]) -> str:
    """One line: how many memory-bound rows meet the fill goal, how many are capped."""
    bound = [r for r in rows if r["limited_by"]["memory_bound"]]
    ok = sum(1 for r in bound if r["fill_goal"] == "ok")
    cpu = sum(1 for r in rows if r["limited_by"].get("cpu_plan"))
    capped = len(rows) - len(bound) - cpu
    fills = ", ".join(f"{r['planned_fill']:.0%}" for r in bound) or "none"
    return (
        f"{ok} of {len(bound)} memory-bound configurations within "
        f"{FILL_GOAL[0]:.0%}-{FILL_GOAL[1]:.0%} of their target (fills: {fills}); "
        f"{capped} capped by the dataset or a heuristic maximum (inferred: plans.json "
        "does not record it)" + (f"; {cpu} CPU plans (compute-bound, no goal)" if cpu else "")
    )
