"""The one rule for autocast: float16 on CUDA, bfloat16 on a CPU only where it is native."""

from __future__ import annotations

import pytest
import torch

from autoseg import precision
from autoseg.precision import autocast_context, autocast_dtype, use_autocast, uses_grad_scaler


@pytest.fixture
def native(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "native_bf16_cpu", lambda: True)


@pytest.fixture
def emulated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "native_bf16_cpu", lambda: False)


@pytest.mark.usefixtures("native")
@pytest.mark.parametrize(
    ("requested", "device", "plan", "expected"),
    [
        (None, "cuda", "amp", True),
        (None, "cuda", "fp32", False),
        (None, "cuda", "bf16", False),  # a CPU plan run on a GPU: float32 unless asked
        (True, "cuda", "fp32", True),
        (False, "cuda", "amp", False),
        (None, "cpu", "bf16", True),
        (None, "cpu", "amp", False),  # a GPU plan on a CPU stays float32
        (None, "cpu", "fp32", False),
        (True, "cpu", "fp32", True),
        (False, "cpu", "bf16", False),
        (None, "mps", "amp", False),
        (True, "mps", "amp", False),
    ],
)
def test_use_autocast(requested: bool | None, device: str, plan: str, expected: bool) -> None:
    assert use_autocast(requested, device, plan) is expected


@pytest.mark.usefixtures("emulated")
@pytest.mark.parametrize("requested", [None, True])
def test_no_bf16_on_a_cpu_that_would_emulate_it(requested: bool | None) -> None:
    assert use_autocast(requested, "cpu", "bf16") is False
    assert use_autocast(None, "cuda", "amp") is True  # CUDA is unaffected


def test_dtypes_and_scaler() -> None:
    assert autocast_dtype("cuda") == torch.float16
    assert autocast_dtype("cpu") == torch.bfloat16
    assert uses_grad_scaler(True, "cuda") and not uses_grad_scaler(True, "cpu")
    assert not uses_grad_scaler(False, "cuda")


def test_autocast_context_casts_convolutions_on_the_cpu() -> None:
    conv = torch.nn.Conv3d(1, 2, 3)
    x = torch.randn(1, 1, 5, 5, 5)
    with autocast_context(True, "cpu"):
        assert conv(x).dtype == torch.bfloat16
    with autocast_context(False, "cpu"):
        assert conv(x).dtype == torch.float32
