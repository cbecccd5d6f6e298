"""Memory model: the analytic estimate against autograd's saved tensors, for both families."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from autoseg.diagnostics.memory_cases import (
    ValidationCase,
    deepmedic_validation_cases,
    unet2d_validation_cases,
    unet_validation_cases,
)
from autoseg.diagnostics.memory_measure import (
    measure_training_memory,
    relative_error,
)
from autoseg.errors import ConfigError
from autoseg.networks import DeepMedicConfig, UNetConfig
from autoseg.planner.memory import (
    FIXED_OVERHEAD_BYTES,
    estimate_inference_memory,
    estimate_training_breakdown,
    estimate_training_memory,
)
from autoseg.precision import native_bf16_cpu

TOLERANCE = 0.10
"""The target: every estimate within 10% of the measurement."""
STRICT = 0.01
"""What the model achieves on the CPU (it counts tensor by tensor); catches drift early."""
UNET = UNetConfig(
    in_channels=1,
    num_classes=3,
    features_per_stage=(32, 64, 128, 256, 320, 320),
    kernel_sizes=((3, 3, 3),) * 6,
    strides=((1, 1, 1), (2, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2)),
)


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _ids(cases: tuple[ValidationCase, ...]) -> list[str]:
    return [c.name for c in cases]


def _check(case: ValidationCase) -> None:
    measured = measure_training_memory(
        case.config, case.patch_size, case.batch_size, case.optimizer
    )
    estimate = estimate_training_breakdown(
        case.config, case.patch_size, case.batch_size, "fp32", case.optimizer
    )
    assert measured.total > 0 and measured.saved_activation_bytes > measured.parameter_bytes / 10
    assert estimate.parameter_bytes == measured.parameter_bytes
    assert estimate.gradient_bytes == measured.gradient_bytes
    assert abs(relative_error(estimate.optimizer_bytes, measured.optimizer_bytes)) < 1e-6
    act_error = relative_error(estimate.activation_bytes, measured.saved_activation_bytes)
    assert abs(act_error) < TOLERANCE, f"activations off by {act_error:+.2%}"
    error = relative_error(estimate.measurable_bytes, measured.total)
    assert abs(error) < TOLERANCE, f"estimate off by {error:+.2%}"
    assert abs(act_error) < STRICT, f"activations off by {act_error:+.2%}: did PyTorch change?"


def test_there_are_enough_diverse_cases() -> None:
    unets, deepmedics = unet_validation_cases(), deepmedic_validation_cases()
    assert len(unets) >= 8 and len(deepmedics) >= 8
    assert {c.config.in_channels for c in unets + deepmedics} >= {1, 2, 3, 4}
    assert {len(c.config.subsampled) for c in deepmedics} == {0, 1, 2}  # type: ignore[union-attr]
    assert {c.batch_size for c in unets} >= {1, 2, 3, 4}
    assert len({c.config.num_stages for c in unets}) >= 4  # type: ignore[union-attr]


@pytest.mark.parametrize("case", unet_validation_cases(), ids=_ids(unet_validation_cases()))
def test_unet_estimate_matches_saved_tensors(case: ValidationCase) -> None:
    _check(case)


@pytest.mark.parametrize("case", unet2d_validation_cases(), ids=_ids(unet2d_validation_cases()))
def test_unet2d_estimate_matches_saved_tensors(case: ValidationCase) -> None:
    """The 2D U-Net (Conv2d on slices folded into the batch) against its own measurement."""
    _check(case)


def test_unet2d_estimate_equals_the_flat_3d_network() -> None:
    """A 2D U-Net is modelled as the 3D network with kernels and strides of 1 along its slice
    axis; both save the same tensors."""
    case = unet2d_validation_cases()[0]
    config = case.config
    assert isinstance(config, UNetConfig)
    flat = UNetConfig(
        in_channels=config.in_channels,
        num_classes=config.num_classes,
        features_per_stage=config.features_per_stage,
        kernel_sizes=config.kernels_3d(),
        strides=config.strides_3d(),
    )
    for precision in ("fp32", "amp"):
        assert estimate_training_memory(
            config, case.patch_size, case.batch_size, precision
        ) == estimate_training_memory(flat, case.patch_size, case.batch_size, precision)


@pytest.mark.parametrize(
    "case", deepmedic_validation_cases(), ids=_ids(deepmedic_validation_cases())
)
def test_deepmedic_estimate_matches_saved_tensors(case: ValidationCase) -> None:
    _check(case)


def test_total_adds_transient_and_fixed_overhead() -> None:
    est = estimate_training_breakdown(UNET, (128, 128, 128), 2, "amp", "sgd")
    assert est.overhead_bytes == FIXED_OVERHEAD_BYTES
    assert est.total == est.measurable_bytes + est.transient_bytes + FIXED_OVERHEAD_BYTES
    assert estimate_training_memory(UNET, (128, 128, 128), 2, "amp") == est.total
    # nnU-Net's default 3d_fullres network at 128^3, batch 2, AMP: a few GB, well under 16 GB
    assert 3e9 < est.total < 16e9


def test_amp_halves_network_activations_but_not_the_loss() -> None:
    fp32 = estimate_training_breakdown(UNET, (64, 64, 64), 2, "fp32")
    amp = estimate_training_breakdown(UNET, (64, 64, 64), 2, "amp")
    assert 0.5 * fp32.activation_bytes < amp.activation_bytes < 0.6 * fp32.activation_bytes
    assert amp.parameter_bytes == fp32.parameter_bytes  # master weights stay fp32


def test_estimate_grows_with_batch_and_patch() -> None:
    base = estimate_training_memory(UNET, (64, 64, 64), 2)
    assert estimate_training_memory(UNET, (64, 64, 64), 4) > base
    assert estimate_training_memory(UNET, (64, 64, 96), 2) > base
    dm = DeepMedicConfig.default(2, 3)
    assert estimate_training_memory(dm, (9, 9, 9), 10) < estimate_training_memory(
        dm, (17, 17, 17), 10
    )


def test_optimizer_state() -> None:
    sgd = estimate_training_breakdown(UNET, (64, 64, 64), 2, "fp32", "sgd")
    adam = estimate_training_breakdown(UNET, (64, 64, 64), 2, "fp32", "adam")
    assert sgd.optimizer_bytes == sgd.parameter_bytes
    assert adam.optimizer_bytes > 2 * adam.parameter_bytes


def test_inference_needs_less_than_training() -> None:
    for config, patch in ((UNET, (128, 128, 128)), (DeepMedicConfig.default(4, 2), (45, 45, 45))):
        infer = estimate_inference_memory(config, patch, 1, "amp")
        assert FIXED_OVERHEAD_BYTES < infer < estimate_training_memory(config, patch, 1, "amp")
        assert estimate_inference_memory(config, patch, 2, "amp") > infer


def test_estimate_is_fast() -> None:
    dm = DeepMedicConfig.default(4, 5)
    start = time.perf_counter()
    for i in range(200):
        estimate_training_memory(UNET, (128, 128, 128 + 32 * (i % 3)), 2, "amp")
        estimate_training_memory(dm, (9 + i % 20, 9, 9), 10, "amp")
    per_call = (time.perf_counter() - start) / 400
    assert per_call < 2e-3, f"{per_call * 1e6:.0f} µs per estimate"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"precision": "fp16"}, r"unknown precision 'fp16'.*\['amp', 'bf16', 'fp32'\]"),
        ({"optimizer": "adma"}, r"unknown optimizer 'adma'.*did you mean 'adam'"),
        ({"batch_size": 0}, "batch size must be a positive integer"),
        ({"patch_size": (64, 64, 60)}, "must be a multiple"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"patch_size": (64, 64, 64), "batch_size": 2, **kwargs}
    with pytest.raises(ConfigError, match=message):
        estimate_training_memory(UNET, **args)  # type: ignore[arg-type]


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


@pytest.mark.skipif(not _cuda_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["fp32", "amp"])
def test_estimate_covers_cuda_peak(precision: str) -> None:
    """On a GPU the estimate (without the fixed overhead) must not undershoot the true peak."""
    from autoseg.diagnostics.memory_measure import measure_cuda_training_peak

    cases = ((UNET, (64, 64, 64), 2), (DeepMedicConfig.default(4, 2), (9, 9, 9), 10))
    for config, patch, batch in cases:  # large enough that cuDNN workspaces are minor
        peak = measure_cuda_training_peak(config, patch, batch, precision)
        est = estimate_training_breakdown(config, patch, batch, precision)
        assert est.measurable_bytes + est.transient_bytes > 0.9 * peak, config.kind


needs_native_bf16 = pytest.mark.skipif(
    not native_bf16_cpu(), reason="this CPU has no native bfloat16 (AVX512-BF16 or AMX)"
)


@needs_native_bf16
@pytest.mark.parametrize(
    "case",
    unet_validation_cases()[:4] + deepmedic_validation_cases()[:4],
    ids=_ids(unet_validation_cases()[:4] + deepmedic_validation_cases()[:4]),
)
def test_bf16_estimate_bounds_cpu_autocast_saved_tensors(case: ValidationCase) -> None:
    """ "bf16" is modelled as "amp": on the CPU, where it is measurable, the saved tensors
    under bfloat16 autocast stay within the estimate and not far below it."""
    measured = measure_training_memory(
        case.config, case.patch_size, case.batch_size, case.optimizer, precision="bf16"
    )
    fp32 = measure_training_memory(case.config, case.patch_size, case.batch_size, case.optimizer)
    estimate = estimate_training_breakdown(
        case.config, case.patch_size, case.batch_size, "bf16", case.optimizer
    )
    assert measured.saved_activation_bytes < 0.8 * fp32.saved_activation_bytes  # really bf16
    ratio = measured.saved_activation_bytes / estimate.activation_bytes
    assert 0.8 <= ratio <= 1.0, f"measured {ratio:.1%} of the estimate"
