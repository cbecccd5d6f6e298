"""Ground truth for the memory model: run one training step and count the bytes it uses.

On any device :func:`measure_training_memory` counts what autograd keeps for backward with
``torch.autograd.graph.saved_tensors_hooks`` (each storage once, parameters excluded), plus
parameter, gradient and optimiser-state bytes after a real ``optimizer.step()``. On CUDA,
:func:`measure_cuda_training_peak` reads ``torch.cuda.max_memory_allocated`` over a step.
The configurations the model is validated on are in :mod:`autoseg.diagnostics.memory_cases`;
the model itself is :mod:`autoseg.planner.memory`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from autoseg.networks import DeepMedicConfig, UNetConfig, build_network
from autoseg.networks.deepmedic_geometry import segment_shapes
from autoseg.planner.memory import OPTIMIZER_STATES
from autoseg.strict import choice_error
from autoseg.trainers.losses import default_loss

__all__ = [
    "MemoryMeasurement",
    "make_training_batch",
    "measure_cuda_training_peak",
    "measure_training_memory",
    "reference_loss",
    "relative_error",
]


@dataclass(frozen=True, slots=True)
class MemoryMeasurement:
    """Measured bytes of one training step (fp32).

    Attributes:
        saved_activation_bytes: Storages autograd saved for backward (parameters excluded).
        parameter_bytes: Parameters.
        gradient_bytes: Gradients after backward.
        optimizer_bytes: Optimiser state after one step.
        total: The sum of the four.
    """

    saved_activation_bytes: int
    parameter_bytes: int
    gradient_bytes: int
    optimizer_bytes: int
    total: int


def reference_loss(
    outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]
) -> torch.Tensor:
    """The trainer's default loss (:func:`autoseg.trainers.losses.default_loss`): soft Dice +
    cross-entropy over the (deep-supervision) outputs, weights halving per level.

    The loss whose saved tensors the memory model counts: per output the log-softmax (cross
    entropy) and softmax (Dice) outputs, the fp32 one-hot target and the int64 labels.

    Args:
        outputs: B×K×Z×Y×X logits, full resolution first.
        targets: B×Z×Y×X int64 labels matching each output's shape.
    """
    return default_loss(len(outputs))(outputs, targets)


def make_training_batch(
    config: UNetConfig | DeepMedicConfig,
    patch_size: Sequence[int],
    batch_size: int,
    device: str = "cpu",
    seed: int = 0,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Random network inputs and label targets of the right shapes.

    Returns:
        ``(inputs, targets)``: for the U-Net one input and one target per output (full
        resolution first); for DeepMedic one input per pathway and one target on the output
        segment (``patch_size`` is the output shape).
    """
    gen = torch.Generator().manual_seed(seed)
    b, c, k = batch_size, config.in_channels, config.num_classes
    if isinstance(config, UNetConfig):
        shapes = config.stage_shapes(tuple(patch_size))
        input_shapes: tuple[tuple[int, ...], ...] = (shapes[0],)
        target_shapes = shapes[: len(config.deep_supervision_scales())]
    else:
        seg = segment_shapes(config, patch_size)
        input_shapes, target_shapes = seg.inputs, (seg.output,)
    inputs = [torch.randn(b, c, *s, generator=gen).to(device) for s in input_shapes]
    targets = [torch.randint(0, k, (b, *s), generator=gen).to(device) for s in target_shapes]
    return inputs, targets


def _forward(net: torch.nn.Module, config: Any, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    out = net(inputs[0]) if isinstance(config, UNetConfig) else net(inputs)
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _make_optimizer(net: torch.nn.Module, optimizer: str) -> torch.optim.Optimizer:
    params = list(net.parameters())
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=1e-3, momentum=0.99, nesterov=True)
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=1e-4)
    if optimizer == "adamw":
        return torch.optim.AdamW(params, lr=1e-4)
    raise choice_error("optimizer", optimizer, OPTIMIZER_STATES)


def measure_training_memory(
    config: UNetConfig | DeepMedicConfig,
    patch_size: Sequence[int],
    batch_size: int,
    optimizer: str = "sgd",
    precision: str = "fp32",
) -> MemoryMeasurement:
    """Measure one training step on the CPU (forward, reference loss, backward, step).

    Saved activations are counted once per storage (by ``untyped_storage().data_ptr()``),
    parameters excluded (the bfloat16 weight copies autocast keeps count as saved tensors).
    ``patch_size`` as in ``estimate_training_memory``; ``precision`` "fp32", or "bf16" for
    the forward pass under CPU bfloat16 autocast.
    """
    torch.manual_seed(0)
    net = build_network(config).train()
    opt = _make_optimizer(net, optimizer)
    inputs, targets = make_training_batch(config, patch_size, batch_size)
    param_ptrs = {p.untyped_storage().data_ptr() for p in net.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        ptr = storage.data_ptr()
        if ptr and ptr not in param_ptrs:
            saved[ptr] = storage.nbytes()
        return tensor

    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        with autocast:
            outputs = _forward(net, config, inputs)
        loss = reference_loss(outputs, targets)
    loss.backward()
    opt.step()
    params = sum(p.numel() * p.element_size() for p in net.parameters())
    grads = sum(
        p.grad.numel() * p.grad.element_size() for p in net.parameters() if p.grad is not None
    )
    state = sum(
        v.numel() * v.element_size()
        for s in opt.state.values()
        for v in s.values()
        if torch.is_tensor(v)
    )
    activations = sum(saved.values())
    return MemoryMeasurement(
        activations, params, grads, state, activations + params + grads + state
    )


def measure_cuda_training_peak(
    config: UNetConfig | DeepMedicConfig,
    patch_size: Sequence[int],
    batch_size: int,
    precision: str = "amp",
    optimizer: str = "sgd",
) -> int:
    """``torch.cuda.max_memory_allocated`` over a training step (after a warm-up step), bytes.

    Runs with ``torch.autocast("cuda", torch.float16)`` and a GradScaler when ``precision``
    is ``"amp"``; gradients are set to None before each step, as the trainer does.

    Raises:
        RuntimeError: if CUDA is not available.
    """
    if not torch.cuda.is_available():
        raise RuntimeError("measure_cuda_training_peak needs a CUDA device")
    torch.manual_seed(0)
    net = build_network(config).cuda().train()
    opt = _make_optimizer(net, optimizer)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "amp")
    inputs, targets = make_training_batch(config, patch_size, batch_size, device="cuda")
    for step in range(2):
        if step == 1:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", torch.float16, enabled=precision == "amp"):
            loss = reference_loss(_forward(net, config, inputs), targets)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    torch.cuda.synchronize()
    return int(torch.cuda.max_memory_allocated())


def relative_error(estimate: int, measured: int) -> float:
    """``(estimate - measured) / measured`` (positive: the estimate is too high)."""
    return (estimate - measured) / measured if measured else math.inf
