"""Numeric precision of training and inference: the one rule for when autocast is on.

A plan's configurations carry a precision:

- ``"fp32"``: plain float32;
- ``"amp"``: CUDA mixed precision (float16 autocast with a gradient scaler, as nnU-Net);
- ``"bf16"``: CPU mixed precision (bfloat16 autocast, no scaler: bfloat16 has float32's
  exponent range). The planner chooses it only where it measured bfloat16 to be faster
  (:mod:`autoseg.planner.cpu_speed`). On a CPU without native bfloat16 (AVX512-BF16 or AMX)
  bfloat16 autocast is emulated and far slower (a 3D U-Net ran 60-80x slower on an AVX2
  CPU), so a ``"bf16"`` plan trains and predicts in float32 there.

:func:`use_autocast` decides for a device; :func:`autocast_dtype` names the dtype
(float16 on CUDA, bfloat16 on the CPU). torch is imported only inside the functions, so the
planner and the CLI stay torch-free at import.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

from autoseg.log import get_logger

__all__ = [
    "PRECISIONS",
    "autocast_context",
    "autocast_dtype",
    "native_bf16_cpu",
    "use_autocast",
    "uses_grad_scaler",
]

PRECISIONS = ("fp32", "amp", "bf16")
"""Precisions a configuration plan may name (see the module docstring)."""
_log = get_logger(__name__)


@functools.cache
def native_bf16_cpu() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX tiles)."""
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    for name in checks:
        check = getattr(torch.cpu, name, None)
        try:
            if check is not None and bool(check()):
                return True
        except (RuntimeError, AttributeError):  # pragma: no cover - exotic builds
            continue
    return False


def use_autocast(requested: bool | None, device_type: str, precision: str) -> bool:
    """Whether to run under autocast on ``device_type`` ("cuda", "cpu", "mps", ...).

    Args:
        requested: ``--amp`` (True), ``--no-amp`` (False) or None (the plan decides).
        device_type: The torch device type training or inference runs on.
        precision: The configuration plan's precision.

    On CUDA, autocast (float16) is on when requested or the plan says ``"amp"``. On a CPU,
    autocast (bfloat16) is on when requested or the plan says ``"bf16"``, and only where the
    CPU computes bfloat16 natively (otherwise it is off, with a note when it was asked for).
    Elsewhere it is off.
    """
    if requested is False:
        return False
    if device_type == "cuda":
        return bool(requested) or precision == "amp"
    if device_type == "cpu":
        wanted = bool(requested) or precision == "bf16"
        if wanted and not native_bf16_cpu():
            _log.info("this CPU has no native bfloat16 (AVX512-BF16 or AMX): running in float32")
            return False
        return wanted
    if requested:
        _log.warning("mixed precision needs CUDA or a CPU with bfloat16; running in float32")
    return False


def autocast_dtype(device_type: str) -> Any:
    """The autocast dtype of a device type: float16 on CUDA, bfloat16 elsewhere."""
    import torch

    return torch.float16 if device_type == "cuda" else torch.bfloat16


def uses_grad_scaler(enabled: bool, device_type: str) -> bool:
    """Whether autocast needs a gradient scaler (float16 only, i.e. on CUDA)."""
    return enabled and device_type == "cuda"


def autocast_context(enabled: bool, device_type: str) -> Any:
    """``torch.autocast`` for the device when ``enabled``, else a null context."""
    import torch

    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=autocast_dtype(device_type))
