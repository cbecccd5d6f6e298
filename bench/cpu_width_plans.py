"""What the CPU U-Net's width costs in patch: the planner's CPU plans at several widths.

On a CPU the planner fits each U-Net iteration into ``cpu_seconds_per_iteration`` of this
CPU's measured speed, so a wider network gets a smaller patch (or batch). This script plans
datasets shaped like the Medical Segmentation Decathlon's (median image at the target
spacing, approximate) with several ``cpu_unet_*`` heuristics (the defaults, which narrow a
U-Net whose patch would see too little, and fixed widths) and prints, per configuration, the
features, the patch, the stages, the batch and how much of the median image (or slice, for
the 2D U-Net) one patch covers. It plans only: no training, seconds.

    python bench/cpu_width_plans.py                       # measures this CPU (a few seconds)
    python bench/cpu_width_plans.py --speed W/cpu_speed.json

The accuracy side of the trade-off is not measured here (RESULTS.md has it for Hippocampus
only, on a slow CPU where the rule narrows). No assertions: a benchmark prints.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from autoseg.frozendict import FrozenDict
from autoseg.planner.cpu_speed import measure_cpu_speed
from autoseg.planner.fingerprint import CaseFingerprint, Fingerprint, IntensityStats
from autoseg.planner.hardware_target import CpuSpeed, HardwareTarget
from autoseg.planner.heuristics import PlannerHeuristics
from autoseg.planner.planner import plan_dataset
from autoseg.planner.plans import Plans
from autoseg.planner.unet_plans import coverage


@dataclass(frozen=True)
class DatasetShape:
    """A dataset reduced to what the U-Net plan depends on."""

    name: str
    spacing: tuple[float, float, float]
    shape: tuple[int, int, int]
    channels: int
    classes: int
    cases: int


DATASETS = (
    DatasetShape("Hippocampus-like (MRI)", (1.0, 1.0, 1.0), (36, 50, 35), 1, 3, 260),
    DatasetShape("BrainTumour-like (4 MRI)", (1.0, 1.0, 1.0), (138, 169, 138), 4, 4, 484),
    DatasetShape("Heart-like (MRI)", (1.37, 1.25, 1.25), (115, 320, 232), 1, 2, 20),
    DatasetShape("Prostate-like (2 MRI)", (3.6, 0.62, 0.62), (20, 320, 319), 2, 3, 32),
    DatasetShape("Spleen-like (CT)", (1.6, 0.79, 0.79), (187, 512, 512), 1, 2, 41),
)
VARIANTS: tuple[tuple[str, dict[str, float]], ...] = (
    ("defaults", {}),
    ("32→320, never narrower", {"cpu_unet_min_patch_coverage": 0.0}),
    ("16→128 (before 2026-12-03)", {"cpu_unet_base_features": 16, "cpu_unet_max_features": 128}),
    ("8→64", {"cpu_unet_base_features": 8, "cpu_unet_max_features": 64}),
)
"""(label, heuristics overrides): the defaults (the GPU's width, halved down to 16 features
where the patch would cover less than 25 % of the median image), the same width without
that rule, the width before 2026-12-03 and the demo's quick preset."""


def fingerprint_for(data: DatasetShape) -> Fingerprint:
    """A fingerprint of ``data.cases`` cases of the median shape (intensities z-scored)."""
    stats = tuple(IntensityStats(0.0, 1.0, 0.0, -2.0, 2.0, -3.0, 3.0) for _ in range(data.channels))
    voxels = FrozenDict({v: 10_000 if v == 0 else 1_000 for v in range(data.classes)})
    case = CaseFingerprint(
        "case", data.spacing, data.shape, data.shape, stats, voxels, FrozenDict(), FrozenDict()
    )
    total = sum(voxels.values())
    return Fingerprint(
        data.name,
        tuple(f"channel{c}" for c in range(data.channels)),
        FrozenDict({f"class_{v}": v for v in range(data.classes)}),
        (case,) * data.cases,
        stats,
        FrozenDict({v: n / total for v, n in voxels.items()}),
        FrozenDict({v: 1.0 for v in range(1, data.classes)}),
        data.spacing,
        data.shape,
    )


def rows_for(data: DatasetShape, plans: Plans, label: str) -> list[str]:
    """Markdown rows: one per planned U-Net configuration."""
    rows = []
    for name, config in plans.configurations.items():
        if not name.startswith("unet"):
            continue
        patch = config.patch_size
        scale = [f / t for f, t in zip(data.spacing, config.target_spacing)]
        image = [max(1, round(s * c)) for s, c in zip(data.shape, scale)]
        if name == "unet2d":
            image[patch.index(1)] = 1
        covered = coverage(patch, tuple(image))  # type: ignore[arg-type]
        features = config.network.features_per_stage  # type: ignore[union-attr]
        seconds = plans.hardware.iteration_seconds(
            name, config.precision, config.estimated_gflops_per_iteration
        )
        rows.append(
            f"| {data.name} | {label} | {name} | {features[0]}→{max(features)} | "
            f"{'×'.join(map(str, patch))} | {len(features)} | {config.batch_size} | "
            f"{covered:.0%} | {seconds or 0:.2f} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", type=Path, help="a workspace's cpu_speed.json (else measure)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the plans")
    parser.add_argument("--ram-gb", type=float, default=6.3, help="the memory target")
    args = parser.parse_args()
    heuristics = PlannerHeuristics()
    if args.speed is not None:
        speed = CpuSpeed.from_dict(json.loads(args.speed.read_text())["speed"])
    else:
        speed = measure_cpu_speed(heuristics.cpu_parallel_efficiency)
    speed = CpuSpeed(speed.gflops_per_thread, args.threads, speed.parallel_efficiency)
    print(f"CPU speed: {speed.describe()}; memory target {args.ram_gb:g} GB")
    hardware = HardwareTarget(
        "cpu", "this CPU", int(args.ram_gb * 1e9), "cpu-ram", args.threads, speed
    )
    columns = ("dataset", "heuristics", "configuration", "features", "patch", "stages", "batch")
    print("| " + " | ".join(columns) + " | covers | s/it |")
    print("|---|---|---|---|---|---:|---:|---:|---:|")
    for data in DATASETS:
        for label, overrides in VARIANTS:
            h = PlannerHeuristics.from_dict(dict(overrides), partial=True)
            plans = plan_dataset(fingerprint_for(data), h, hardware)
            for row in rows_for(data, plans, label):
                print(row, flush=True)


if __name__ == "__main__":
    main()
