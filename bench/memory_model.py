"""Memory model vs ground truth: estimate and measurement for every validation configuration.

    python bench/memory_model.py            # CPU: autograd's saved tensors + params/grads/state
    python bench/memory_model.py --cuda     # also torch.cuda.max_memory_allocated (fp32 and AMP)

CPU rows compare ``MemoryEstimate.measurable_bytes`` with ``measure_training_memory``. CUDA
rows compare the estimate without its fixed overhead (activations, parameters, gradients,
optimiser state, transient backward buffers) with the peak allocated over one training step,
for the validation cases and two realistic networks. Prints only; asserts nothing.
"""

from __future__ import annotations

import argparse
import time

import torch

from autoseg.diagnostics.memory_cases import (
    ValidationCase,
    deepmedic_validation_cases,
    unet2d_validation_cases,
    unet_validation_cases,
)
from autoseg.diagnostics.memory_measure import (
    measure_cuda_training_peak,
    measure_training_memory,
    relative_error,
)
from autoseg.networks import DeepMedicConfig, UNetConfig
from autoseg.planner.memory import estimate_training_breakdown

MIB = 2**20


def realistic_cases() -> tuple[ValidationCase, ...]:
    """nnU-Net's default 3d_fullres-like U-Net and the paper's DeepMedic (GPU only)."""
    unet = UNetConfig(
        in_channels=1,
        num_classes=3,
        features_per_stage=(32, 64, 128, 256, 320, 320),
        kernel_sizes=((3, 3, 3),) * 6,
        strides=((1, 1, 1),) + ((2, 2, 2),) * 5,
    )
    aniso = UNetConfig(
        in_channels=4,
        num_classes=4,
        features_per_stage=(32, 64, 128, 256, 320, 320),
        kernel_sizes=((1, 3, 3), (1, 3, 3)) + ((3, 3, 3),) * 4,
        strides=((1, 1, 1), (1, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2), (1, 2, 2)),
    )
    return (
        ValidationCase("U-Net 128^3 b2", unet, (128, 128, 128), 2),
        ValidationCase("U-Net 4ch aniso b2", aniso, (32, 192, 160), 2),
        ValidationCase("DeepMedic paper b10", DeepMedicConfig.default(4, 2), (9, 9, 9), 10),
        ValidationCase("DeepMedic 45^3 b4", DeepMedicConfig.default(4, 2), (45, 45, 45), 4),
    )


def cpu_table(cases: tuple[ValidationCase, ...]) -> float:
    """Print estimate vs measured on the CPU; return the worst absolute relative error."""
    print(
        f"{'family':10} {'case':28} {'measured MiB':>12} {'estimate MiB':>12} {'error':>9}"
        f" {'act. error':>10} {'sec':>5}"
    )
    worst = 0.0
    for case in cases:
        start = time.perf_counter()
        measured = measure_training_memory(
            case.config, case.patch_size, case.batch_size, case.optimizer
        )
        seconds = time.perf_counter() - start
        est = estimate_training_breakdown(
            case.config, case.patch_size, case.batch_size, "fp32", case.optimizer
        )
        error = relative_error(est.measurable_bytes, measured.total)
        act = relative_error(est.activation_bytes, measured.saved_activation_bytes)
        worst = max(worst, abs(error))
        print(
            f"{case.config.kind:10} {case.name:28} {measured.total / MIB:12.3f}"
            f" {est.measurable_bytes / MIB:12.3f} {error:+9.4%} {act:+10.4%} {seconds:5.2f}"
        )
    return worst


def cuda_table(cases: tuple[ValidationCase, ...]) -> float:
    """Print estimate (no fixed overhead) vs max_memory_allocated; return the worst error."""
    print(
        f"\n{'family':10} {'case':28} {'precision':9} {'peak MiB':>10} {'estimate MiB':>12}"
        f" {'error':>9}"
    )
    worst = 0.0
    for case in cases:
        for precision in ("fp32", "amp"):
            peak = measure_cuda_training_peak(
                case.config, case.patch_size, case.batch_size, precision, case.optimizer
            )
            est = estimate_training_breakdown(
                case.config, case.patch_size, case.batch_size, precision, case.optimizer
            )
            value = est.measurable_bytes + est.transient_bytes
            error = relative_error(value, peak)
            worst = max(worst, abs(error))
            print(
                f"{case.config.kind:10} {case.name:28} {precision:9} {peak / MIB:10.1f}"
                f" {value / MIB:12.1f} {error:+9.2%}"
            )
            torch.cuda.empty_cache()
    return worst


def time_estimates() -> float:
    """Mean seconds per estimate over the realistic cases."""
    cases = realistic_cases()
    start = time.perf_counter()
    for _ in range(200):
        for case in cases:
            estimate_training_breakdown(case.config, case.patch_size, case.batch_size, "amp")
    return (time.perf_counter() - start) / (200 * len(cases))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cuda", action="store_true", help="also measure on the CUDA device")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cases = unet_validation_cases() + unet2d_validation_cases() + deepmedic_validation_cases()
    worst = cpu_table(cases)
    print(f"\nworst CPU error: {worst:.4%} over {len(cases)} configurations")
    print(f"estimate: {time_estimates() * 1e6:.0f} µs per call")
    if args.cuda:
        if not torch.cuda.is_available():
            print("no CUDA device: skipping the max_memory_allocated comparison")
            return
        worst_cuda = cuda_table(cases + realistic_cases())
        print(f"\nworst CUDA error: {worst_cuda:.2%} ({torch.cuda.get_device_name()})")


if __name__ == "__main__":
    main()
