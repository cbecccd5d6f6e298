"""Sliding-window prediction speed: autoseg's batched, cached implementation vs a plain one.

Generates one random single-channel case of 160×160 in-plane voxels and 120 slices (array
shape Z×Y×X = 120×160×160), builds an ``autoseg.networks`` U-Net with random weights and prints
seconds per case with and without mirroring TTA for:

- ours: ``autoseg.inference.sliding_window_inference`` (batched windows, cached Gaussian,
  preallocated accumulators, batched mirroring);
- reference: one window at a time, one mirror at a time, a fresh Gaussian per window.

It also prints the largest difference between the two outputs (they compute the same thing).
No assertions: this is a benchmark, not a test. ``--cpu-study`` adds the measurements behind
the CPU defaults (window batch 1 vs 2 vs 4; bfloat16 autocast vs float32 for one window).

Usage::

    python bench/predict_speed.py            # default: about 3 minutes on an idle 2-core CPU
    python bench/predict_speed.py --quick    # a 64×96×96 case and a smaller U-Net: under a minute
    python bench/predict_speed.py --device cuda --batch-size 4
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from autoseg.inference.sliding_window import compute_window_starts, sliding_window_inference
from autoseg.inference.window_memory import CPU_WINDOW_BATCH
from autoseg.networks import UNetConfig, build_network

CASE_SHAPE = (120, 160, 160)  # Z, Y, X
QUICK_CASE_SHAPE = (64, 96, 96)
MIRROR_AXES = (0, 1, 2)


@dataclass(frozen=True)
class Setting:
    """Model and window settings of one benchmark run."""

    case_shape: tuple[int, int, int]
    patch: tuple[int, int, int]
    features: tuple[int, ...]
    num_classes: int = 3


def build_model(setting: Setting) -> torch.nn.Module:
    """A random-weights ``autoseg.networks`` U-Net in eval mode (one full-resolution output)."""
    torch.manual_seed(0)
    n = len(setting.features)
    config = UNetConfig(
        in_channels=1,
        num_classes=setting.num_classes,
        features_per_stage=setting.features,
        kernel_sizes=((3, 3, 3),) * n,
        strides=((1, 1, 1),) + ((2, 2, 2),) * (n - 1),
        convs_per_stage=2,
        deep_supervision=False,
    )
    return build_network(config).eval()


def reference_gaussian(patch: tuple[int, int, int], sigma_scale: float = 1 / 8) -> torch.Tensor:
    """Gaussian weights built from scratch with a dense meshgrid (deliberately uncached)."""
    grids = np.meshgrid(*[np.arange(p) - (p - 1) / 2 for p in patch], indexing="ij")
    sq = sum((g / (p * sigma_scale)) ** 2 for g, p in zip(grids, patch))
    gauss = np.exp(-0.5 * sq)
    gauss /= gauss.max()
    gauss = np.maximum(gauss, gauss[gauss > 0].min())
    return torch.from_numpy(gauss.astype(np.float32))


def reference_sliding_window(
    model: torch.nn.Module, image: torch.Tensor, setting: Setting, tta: bool
) -> torch.Tensor:
    """The plain way: one window per forward, one flip per forward, a new Gaussian each time."""
    patch = setting.patch
    combos = [(), (2,), (3,), (4,), (2, 3), (2, 4), (3, 4), (2, 3, 4)] if tta else [()]
    sums = torch.zeros((setting.num_classes, *image.shape[1:]), device=image.device)
    norm = torch.zeros(image.shape[1:], device=image.device)
    with torch.no_grad():
        for z, y, x in compute_window_starts(tuple(image.shape[1:]), patch):
            zs, ys, xs = slice(z, z + patch[0]), slice(y, y + patch[1]), slice(x, x + patch[2])
            window = image[:, zs, ys, xs].unsqueeze(0)
            pred = torch.zeros((1, setting.num_classes, *patch), device=image.device)
            for dims in combos:
                flipped = torch.flip(window, dims) if dims else window
                out = model(flipped)
                pred += torch.flip(out, dims) if dims else out
            gauss = reference_gaussian(patch).to(image.device)
            sums[:, zs, ys, xs] += pred[0] / len(combos) * gauss
            norm[zs, ys, xs] += gauss
    return sums / norm


def timed(fn: Callable[[], torch.Tensor], repeats: int) -> tuple[float, torch.Tensor]:
    """Best wall-clock seconds over ``repeats`` calls, and the last result (moved to CPU)."""
    best, result = float("inf"), torch.empty(0)
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn().cpu()  # also waits for queued GPU work
        best = min(best, time.perf_counter() - start)
    return best, result


def run(setting: Setting, device: torch.device, batch_size: int, repeats: int) -> None:
    """Time ours and the reference with and without TTA, and print the figures."""
    model = build_model(setting).to(device)
    image = torch.randn((1, *setting.case_shape), generator=torch.Generator().manual_seed(0)).to(
        device
    )
    windows = len(compute_window_starts(setting.case_shape, setting.patch))
    threads = f"{torch.get_num_threads()} CPU threads" if device.type == "cpu" else str(device)
    print(
        f"model: autoseg U-Net, features {setting.features}, patch {setting.patch}, "
        f"{windows} windows over Z×Y×X {setting.case_shape}, {threads}"
    )
    with torch.inference_mode():  # warm-up: kernel selection for both batch shapes
        for batch in sorted({1, batch_size}):
            model(torch.zeros((batch, 1, *setting.patch), device=device))
    for tta in (False, True):
        axes = MIRROR_AXES if tta else None
        ours_fn = functools.partial(
            sliding_window_inference,
            model,
            image,
            setting.patch,
            setting.num_classes,
            batch_size=batch_size,
            mirror_axes=axes,
            compute_device=device,
            accumulate_device=device,
        )
        ours_s, ours = timed(ours_fn, repeats)
        ref_fn = functools.partial(reference_sliding_window, model, image, setting, tta)
        ref_s, ref = timed(ref_fn, 1)
        diff = float((ours - ref).abs().max())
        label = "with TTA (8 mirrors)" if tta else "without TTA"
        print(
            f"{label:21s} ours {ours_s:7.2f} s/case (batch {batch_size})  "
            f"reference {ref_s:7.2f} s/case  ratio ref/ours {ref_s / ours_s:5.2f}  "
            f"max |diff| {diff:.1e}"
        )


def cpu_study(setting: Setting, repeats: int) -> None:
    """Measure window batch 1, 2, 4 (no TTA), and one forward in bfloat16 autocast vs float32."""
    model = build_model(setting)
    image = torch.randn((1, *setting.case_shape), generator=torch.Generator().manual_seed(0))
    for batch_size in (1, 2, 4):
        fn = functools.partial(
            sliding_window_inference,
            model,
            image,
            setting.patch,
            setting.num_classes,
            batch_size=batch_size,
        )
        seconds, _ = timed(fn, repeats)
        print(f"cpu study: batch {batch_size}, float32 {seconds:7.2f} s/case")
    window = torch.randn((1, 1, *setting.patch))
    for amp in (False, True):
        with torch.inference_mode(), torch.autocast("cpu", enabled=amp):
            model(window)  # warm-up
            seconds, _ = timed(functools.partial(model, window), repeats)
        precision = "bfloat16 autocast" if amp else "float32"
        print(f"cpu study: one window, {precision:17s} {seconds:7.2f} s/forward")


def _memory_kib(field: str) -> int:
    """A ``VmRSS``/``VmHWM`` value of this process from /proc/self/status, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")


def _reset_peak_memory() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


def export_ram(full: bool, classes: int = 10) -> None:
    """Peak RAM of exporting a ``classes``-class 512x512x300 prediction (see module docstring)."""
    from autoseg.data.geometry import Geometry
    from autoseg.data.imageio import write_image
    from autoseg.inference.export import export_prediction
    from autoseg.preprocessing.resample import compute_new_shape
    from autoseg.preprocessing.store import CaseProperties

    shape, spacing, target = (300, 512, 512), (1.0, 0.7, 0.7), (1.0, 1.0, 1.0)
    grid = compute_new_shape(shape, spacing, target)
    geometry = Geometry(shape, spacing, (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    properties = CaseProperties(
        "bench",
        geometry,
        tuple((0, n) for n in shape),
        target,
        grid,  # type: ignore[arg-type]
    )
    rng = np.random.default_rng(0)
    coarse = rng.random((classes, *(-(-n // 8) for n in grid)), dtype=np.float32)
    probabilities = np.empty((classes, *grid), dtype=np.float32)
    for k in range(classes):  # blocky class maps (8-voxel blocks), built class by class
        block = coarse[k].repeat(8, 0).repeat(8, 1).repeat(8, 2)
        probabilities[k] = block[: grid[0], : grid[1], : grid[2]]
    output_bytes = 4 * int(np.prod(shape))
    print(
        f"export: {classes} classes, probabilities {classes}x{grid} float32 = "
        f"{probabilities.nbytes / 1e9:.2f} GB -> labels {shape} (one float32 volume of that "
        f"shape = {output_bytes / 1e9:.2f} GB)"
    )
    with tempfile.TemporaryDirectory() as folder:
        reference = Path(folder) / "ref.nii.gz"
        write_image(reference, np.zeros(shape, dtype=np.uint8), geometry)
        for save in (False, True) if full else (False,):
            _reset_peak_memory()
            before = _memory_kib("VmRSS") * 1024
            start = time.perf_counter()
            export_prediction(
                probabilities,
                properties,
                Path(folder) / "out.nii.gz",
                reference=reference,
                probabilities_path=Path(folder) / "out.npz" if save else None,
            )
            seconds = time.perf_counter() - start
            extra = _memory_kib("VmHWM") * 1024 - before
            label = "with --save-probabilities" if save else "labels only (class by class)"
            print(
                f"export {label:27s} {seconds:6.1f} s, peak RAM above the input "
                f"{extra / 1e9:5.2f} GB = {extra / output_bytes:4.1f} float32 output volumes "
                f"(total peak {(before + extra) / 1e9:.2f} GB)"
            )


def predictor_speed(cases: int = 3) -> None:
    """Seconds per case of the real ``autoseg predict`` path on 120x160x160 phantoms."""
    from autoseg.data.synthetic import PhantomSpec, generate_phantom_dataset
    from autoseg.inference.batch_prediction import PredictCommand, run_prediction
    from autoseg.inference.checkpoint import save_checkpoint
    from autoseg.planner.workflow import run_plan
    from autoseg.workspace import Workspace

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        spec = PhantomSpec(
            num_train_cases=2, num_test_cases=cases, base_shape=CASE_SHAPE, spacing="iso"
        )
        generate_phantom_dataset(root / "ds", spec)
        workspace = Workspace(root / "work")
        plans = run_plan(root / "ds", workspace, device="cpu").plans
        plan = plans.configuration("unet3d")
        torch.manual_seed(0)
        network = build_network(plan.network)
        save_checkpoint(
            workspace.fold_dir("unet3d", 0) / "checkpoint_final.pt",
            {
                "model": network.state_dict(),
                "state_json": "{}",
                "plans_json": plans.to_json(),
                "train_config_json": "{}",
                "configuration": "unet3d",
                "fold": "0",
            },
        )
        print(
            f"predictor: planned U-Net {plan.network.to_dict()['features_per_stage']}, "
            f"window {plan.inference_patch_size}, {cases} cases of Z×Y×X about {CASE_SHAPE}"
        )
        for tta, workers in ((False, 0), (False, 1), (True, 1)):
            command = PredictCommand(
                inputs=(root / "ds" / "imagesTs",),
                output=root / f"out_{tta}_{workers}",
                workspace=workspace,
                config="unet3d",
                use_mirroring=tta,
                num_workers=workers,
                threads=torch.get_num_threads(),
            )
            report = run_prediction(command)
            label = "with TTA" if tta else "without TTA"
            print(
                f"predictor {label:11s} -np {workers}: {report.seconds / cases:7.2f} s/case "
                "(read + preprocess + predict + export)"
            )


def main() -> None:
    """Parse arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"a smaller case {QUICK_CASE_SHAPE} and model"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help=f"windows per forward (CPU: {CPU_WINDOW_BATCH})",
    )
    parser.add_argument("--repeats", type=int, default=1, help="timing repeats of ours (best)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--cpu-study", action="store_true", help="batch 1/2/4 and bfloat16 on CPU")
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=("sliding-window", "export", "predictor"),
        default=("sliding-window", "export"),
        help="what to measure (default: sliding-window export)",
    )
    parser.add_argument(
        "--export-full", action="store_true", help="also export with --save-probabilities"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        setting = Setting(QUICK_CASE_SHAPE, patch=(48, 64, 64), features=(8, 16, 32))
    else:
        setting = Setting(CASE_SHAPE, patch=(80, 80, 80), features=(8, 16, 32))
    device = torch.device(args.device)
    if "sliding-window" in args.parts:
        run(setting, device, args.batch_size or CPU_WINDOW_BATCH, args.repeats)
        if args.cpu_study:
            cpu_study(setting, args.repeats)
    if "export" in args.parts:
        export_ram(args.export_full)
    if "predictor" in args.parts:
        predictor_speed()


if __name__ == "__main__":
    main()
