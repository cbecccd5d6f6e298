"""Human-readable summary of a plan (what ``autoseg plan`` prints)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from autoseg.networks import UNetConfig
from autoseg.planner.mirroring import AXIS_NAMES
from autoseg.planner.unet_topology import unet_width

if TYPE_CHECKING:
    from autoseg.planner.workflow import PlanReport

__all__ = ["format_plan_summary"]


def _gb(value: int) -> str:
    return f"{value / 1e9:.2f} GB"


def _mirroring_line(report: PlanReport) -> str:
    """unet3d's mirror axes, and the class orders that removed the others."""
    axes = report.plans.configurations["unet3d"].augmentation.mirror_axes
    line = "mirroring: " + (", ".join(AXIS_NAMES[a] for a in axes) if axes else "none")
    if report.class_orders:
        names = {v: k for k, v in report.plans.labels.items()}
        fixed = sorted({o.axis for o in report.class_orders})
        line += (
            f"; not {', '.join(AXIS_NAMES[a] for a in fixed)}, where the classes keep their "
            f"order ({'; '.join(o.describe(names) for o in report.class_orders)})"
        )
    return line


def _narrowed_lines(report: PlanReport) -> list[str]:
    """A line for each U-Net the planner made narrower than the heuristics' width on a CPU
    (its decision says why)."""
    plans = report.plans
    wanted = unet_width(plans.heuristics, on_cpu=plans.hardware.device == "cpu")[0]
    lines = []
    for name in ("unet3d", "unet2d"):
        config = plans.configurations.get(name)
        network = config.network if config is not None else None
        if isinstance(network, UNetConfig) and network.features_per_stage[0] < wanted:
            lines.append(f"{name}: {plans.decisions[name].reason}")
    return lines


def format_plan_summary(report: PlanReport) -> str:
    """A few lines: target, spacing, each configuration's patch, batch and estimates, and why
    each candidate that was not planned was not."""
    plans = report.plans
    hw = plans.hardware
    lines = [
        f"dataset {plans.dataset_name}: {plans.num_channels} channel(s) "
        f"{', '.join(plans.channel_names)}; {plans.num_classes} classes",
        f"target: {hw.device} ({hw.device_name}), memory {_gb(hw.memory_target_bytes)} "
        f"[{hw.memory_source}]"
        + (f", measured speed {hw.cpu_speed.describe()}" if hw.cpu_speed is not None else ""),
        "normalisation: "
        + ", ".join(
            f"{name}={n.scheme}{' (masked)' if n.use_mask else ''}"
            for name, n in zip(plans.channel_names, plans.normalization)
        ),
    ]
    for name, config in plans.configurations.items():
        spacing = "x".join(f"{s:.3g}" for s in config.target_spacing)
        kind = "output segment" if name == "deepmedic" else "patch"
        gflops = config.estimated_gflops_per_iteration
        seconds = hw.iteration_seconds(config.network.kind, config.precision, gflops)
        lines.append(
            f"{name}: spacing {spacing} mm, {kind} {'x'.join(map(str, config.patch_size))}, "
            f"batch {config.batch_size}, {config.precision}, "
            f"est. memory {_gb(config.estimated_memory_bytes)}, {gflops:.1f} GFLOP/iteration"
            + (f" (~{seconds:.2f} s here)" if seconds is not None else "")
        )
    if "unet3d" in plans.configurations:
        lines.append(_mirroring_line(report))
    lines += _narrowed_lines(report)
    for name, decision in plans.decisions.items():
        if not decision.planned:
            lines.append(f"{name}: not planned ({decision.reason})")
    done = ", ".join(
        f"{k}: {v} new, {report.preprocessing.skipped[k]} up to date"
        for k, v in report.preprocessing.processed.items()
    )
    lines.append(f"preprocessed {done}")
    if report.fingerprint_reused and report.plans_reused:
        lines.append("fingerprint and plans were up to date")
    return "\n".join(lines)
