"""Analytic memory model of both network families (bytes).

Training memory = parameters + gradients + optimiser state + the activations autograd keeps for
backward (the input batch, every conv/norm/activation tensor a later backward step needs, the
loss's tensors) + transient backward buffers + :data:`FIXED_OVERHEAD_BYTES`. The estimate is
pure arithmetic over the layer list (no torch), so the planner can call it thousands of times.

The activation term mirrors what PyTorch saves, tensor by tensor (checked against
``torch.autograd.graph.saved_tensors_hooks`` by
:func:`autoseg.diagnostics.memory_measure.measure_training_memory`, for tests and ``bench/``):

- U-Net block: the conv output (kept by instance norm) and the norm output (kept by the in-place
  LeakyReLU and the next conv), plus per-(sample, channel) norm statistics; the decoder's
  concatenation; the network input. A 2D U-Net is counted as the 3D network with kernels and
  strides of 1 along its slice axis (``UNetConfig.kernels_3d``): the same tensors, with its
  batch of slices as the batch (its 2D layers save exactly these; the slice axis is folded
  into the batch by views).
- DeepMedic layer: the batch-norm input, the PReLU input, the conv input (the dropout output
  and its mask where dropout is on; the padded tensor for the first FC layer); batch-norm
  statistics and running buffers.
- Loss (per output, the reference Dice + cross-entropy of
  :mod:`autoseg.diagnostics.memory_measure`): log-softmax and softmax outputs and the one-hot
  target (fp32), and the int64 labels.

Under ``"amp"`` (CUDA autocast, fp16) conv, norm and activation tensors take 2 bytes per value
and fp16 copies of conv/PReLU weights are kept, while norm statistics, the loss tensors and the
fp32 input batch stay 4 bytes; dropout masks are 1-byte booleans (on the CPU, in ``"fp32"``,
PyTorch keeps 4-byte masks, which is what is modelled there). The AMP figures follow PyTorch's
autocast rules; they could not be measured on this project's GPU-less machines. ``"bf16"``
(CPU autocast to bfloat16) is modelled as ``"amp"``: on the CPU, where it can be measured,
the saved activations of the validation cases came to 88-97 % of that estimate
(``tests/planner/test_memory.py``), so the model errs on the safe side there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from autoseg.errors import ConfigError
from autoseg.networks import NETWORK_KINDS, DeepMedicConfig, UNetConfig
from autoseg.networks.deepmedic_geometry import segment_shapes
from autoseg.strict import choice_error

__all__ = [
    "FIXED_OVERHEAD_BYTES",
    "OPTIMIZER_STATES",
    "PRECISIONS",
    "MemoryEstimate",
    "estimate_inference_memory",
    "estimate_training_breakdown",
    "estimate_training_memory",
]

FIXED_OVERHEAD_BYTES = 1024**3
"""1 GiB independent of the network: the CUDA context and cuDNN/cuBLAS handles and workspaces,
and the caching allocator's fragmentation (or, on the CPU, the framework's own memory)."""
PRECISIONS = ("amp", "bf16", "fp32")
OPTIMIZER_STATES = {"adam": 2, "adamw": 2, "sgd": 1}
"""fp32 state tensors per parameter (SGD with momentum: one buffer; Adam: two moments)."""

_LOSS_FLOAT_COPIES = 3  # log-softmax output, softmax output, one-hot target
_TRANSIENT_COPIES = 2  # gradients of the largest activation alive at once during backward


@dataclass(frozen=True, slots=True)
class MemoryEstimate:
    """Estimated training memory, in bytes, by kind.

    Attributes:
        activation_bytes: Tensors kept for backward, input batch and loss included.
        parameter_bytes: fp32 parameters.
        gradient_bytes: fp32 gradients.
        optimizer_bytes: Optimiser state.
        transient_bytes: Gradient buffers alive at once during backward.
        overhead_bytes: :data:`FIXED_OVERHEAD_BYTES`.
    """

    activation_bytes: int
    parameter_bytes: int
    gradient_bytes: int
    optimizer_bytes: int
    transient_bytes: int
    overhead_bytes: int

    @property
    def measurable_bytes(self) -> int:
        """What :func:`~autoseg.diagnostics.memory_measure.measure_training_memory` measures:
        activations, params, grads, state."""
        return (
            self.activation_bytes
            + self.parameter_bytes
            + self.gradient_bytes
            + self.optimizer_bytes
        )

    @property
    def total(self) -> int:
        """Everything: the figure compared with the memory target."""
        return self.measurable_bytes + self.transient_bytes + self.overhead_bytes


class _Tally:
    """Accumulates activation bytes and the largest single activation tensor."""

    def __init__(self, act_bytes: int, mask_bytes: int) -> None:
        self.act = act_bytes
        self.mask = mask_bytes
        self.total = 0
        self.largest = 0
        self.params = 0
        self.param_tensors = 0
        self.weight_copies = 0  # values of conv/PReLU weights autocast keeps in fp16

    def tensor(self, values: int, itemsize: int | None = None, copies: int = 1) -> None:
        """``copies`` tensors of ``values`` elements (activation dtype unless ``itemsize``)."""
        nbytes = values * (self.act if itemsize is None else itemsize)
        self.total += copies * nbytes
        self.largest = max(self.largest, nbytes)

    def small(self, values: int) -> None:
        """fp32 statistics / buffers (not candidates for the largest tensor)."""
        self.total += 4 * values

    def weights(self, *sizes: int, copied: int = 0) -> None:
        self.params += sum(sizes)
        self.param_tensors += len(sizes)
        self.weight_copies += copied


def _check(precision: str, optimizer: str | None, batch_size: int) -> int:
    """Validate the arguments; return the batch size as a Python int."""
    if precision not in PRECISIONS:
        raise choice_error("precision", precision, PRECISIONS)
    if optimizer is not None and optimizer not in OPTIMIZER_STATES:
        raise choice_error("optimizer", optimizer, OPTIMIZER_STATES)
    if isinstance(batch_size, bool) or not hasattr(batch_size, "__index__") or batch_size < 1:
        raise ConfigError(f"batch size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


def _loss(t: _Tally, batch: int, classes: int, voxels: int) -> None:
    t.tensor(batch * classes * voxels, 4, copies=_LOSS_FLOAT_COPIES)
    t.tensor(batch * voxels, 8)  # int64 labels
    t.small(1)  # cross-entropy's total weight


def _input(t: _Tally, values: int, amp: bool) -> None:
    t.tensor(values, 4)  # the batch itself, fp32
    if amp:
        t.tensor(values)  # the fp16 copy the first conv keeps


def _conv_norm_act(t: _Tally, batch: int, cin: int, cout: int, kernel: int, voxels: int) -> None:
    t.weights(cin * cout * kernel, cout, cout, copied=cin * cout * kernel)
    t.tensor(batch * cout * voxels, copies=2)  # conv output, norm output
    t.small(3 * batch * cout)  # per-instance weight, mean, inverse std


def _unet(config: UNetConfig, patch: tuple[int, ...], t: _Tally, batch: int, amp: bool) -> None:
    shapes = config.stage_shapes(patch)
    voxels = [math.prod(s) for s in shapes]
    feats, convs = config.features_per_stage, config.convs_per_stage
    kernels, strides = config.kernels_3d(), config.strides_3d()  # 2D: 1 along the slice axis
    _input(t, batch * config.in_channels * voxels[0], amp)
    cin = config.in_channels
    for s, cout in enumerate(feats):
        kernel = math.prod(kernels[s])
        for c in range(convs):
            _conv_norm_act(t, batch, cin if c == 0 else cout, cout, kernel, voxels[s])
        cin = cout
    for s in range(config.num_stages - 1):
        up = math.prod(strides[s + 1])
        t.weights(feats[s + 1] * feats[s] * up, feats[s], copied=feats[s + 1] * feats[s] * up)
        t.tensor(batch * 2 * feats[s] * voxels[s])  # concatenation
        kernel = math.prod(kernels[s])
        for c in range(convs):
            _conv_norm_act(t, batch, (2 if c == 0 else 1) * feats[s], feats[s], kernel, voxels[s])
    for s in range(len(config.deep_supervision_scales())):
        k = config.num_classes
        t.weights(feats[s] * k, k, copied=feats[s] * k)
        _loss(t, batch, k, voxels[s])


def _preact(
    t: _Tally,
    batch: int,
    cin: int,
    cout: int,
    kernel: tuple[int, ...],
    voxels: int,
    *,
    first: bool,
    batch_norm: bool,
    dropout: float = 0.0,
    padded_voxels: int = 0,
) -> None:
    """One DeepMedic layer on ``voxels`` input voxels (conv input voxels if padded)."""
    taps = math.prod(kernel)
    if first:
        t.weights(cin * cout * taps, cout, copied=cin * cout * taps)
        return  # the conv keeps its input, counted by the caller
    if batch_norm:
        t.weights(cin, cin)
        t.tensor(batch * cin * voxels)  # batch-norm input
        t.small(4 * cin)  # running mean/var, batch mean, inverse std
    t.weights(cin, cin * cout * taps, cout, copied=cin + cin * cout * taps)
    t.tensor(batch * cin * voxels, copies=2)  # PReLU input, conv (or pad) input
    if dropout > 0:
        t.tensor(batch * cin * voxels, t.mask)
    if padded_voxels:
        t.tensor(batch * cin * padded_voxels)


def _deepmedic(
    config: DeepMedicConfig, out: tuple[int, ...], t: _Tally, batch: int, amp: bool
) -> None:
    shapes = segment_shapes(config, out)
    bn = config.batch_norm
    for (_, path), shape in zip(config.pathways(), shapes.inputs):
        _input(t, batch * config.in_channels * math.prod(shape), amp)
        cin, size = config.in_channels, list(shape)
        for i, (cout, kernel) in enumerate(zip(path.features, path.kernels)):
            _preact(t, batch, cin, cout, kernel, math.prod(size), first=i == 0, batch_norm=bn)
            cin, size = cout, [n - k + 1 for n, k in zip(size, kernel)]
    voxels = math.prod(shapes.output)
    chans = (config.concat_features(), *config.fc_features, config.num_classes)
    for i in range(len(chans) - 1):
        kernel = config.fc_first_kernel if i == 0 else (1, 1, 1)
        padded = math.prod(n + k - 1 for n, k in zip(shapes.output, kernel)) if i == 0 else 0
        if i == 0 and padded == voxels:
            padded = 0
        _preact(
            t,
            batch,
            chans[i],
            chans[i + 1],
            kernel,
            voxels,
            first=False,
            batch_norm=bn,
            dropout=config.dropout[i],
            padded_voxels=padded,
        )
    _loss(t, batch, config.num_classes, voxels)


def _tally(
    config: UNetConfig | DeepMedicConfig,
    patch_size: tuple[int, ...],
    batch_size: int,
    precision: str,
) -> _Tally:
    amp = precision in ("amp", "bf16")
    t = _Tally(act_bytes=2 if amp else 4, mask_bytes=1 if amp else 4)
    if isinstance(config, UNetConfig):
        _unet(config, patch_size, t, batch_size, amp)
    elif isinstance(config, DeepMedicConfig):
        _deepmedic(config, patch_size, t, batch_size, amp)
    else:
        raise choice_error("network kind", getattr(config, "kind", config), NETWORK_KINDS)
    if amp:
        t.total += 2 * t.weight_copies
    return t


def estimate_training_breakdown(
    config: UNetConfig | DeepMedicConfig,
    patch_size: tuple[int, int, int],
    batch_size: int,
    precision: str = "fp32",
    optimizer: str = "sgd",
) -> MemoryEstimate:
    """Training memory by kind, in bytes (see :func:`estimate_training_memory`)."""
    batch_size = _check(precision, optimizer, batch_size)
    t = _tally(config, patch_size, batch_size, precision)
    params = 4 * t.params
    state = OPTIMIZER_STATES[optimizer] * params + (
        4 * t.param_tensors if optimizer != "sgd" else 0
    )
    return MemoryEstimate(
        activation_bytes=t.total,
        parameter_bytes=params,
        gradient_bytes=params,
        optimizer_bytes=state,
        transient_bytes=_TRANSIENT_COPIES * t.largest,
        overhead_bytes=FIXED_OVERHEAD_BYTES,
    )


def estimate_training_memory(
    config: UNetConfig | DeepMedicConfig,
    patch_size: tuple[int, int, int],
    batch_size: int,
    precision: str = "fp32",
    optimizer: str = "sgd",
) -> int:
    """Peak memory of one training step, in bytes, fixed overhead included.

    Args:
        config: Network config (either family).
        patch_size: U-Net patch (Z, Y, X), a multiple of ``config.patch_divisor()``; for
            DeepMedic the OUTPUT segment shape (pathway inputs follow from ``segment_shapes``).
        batch_size: Samples per step, >= 1.
        precision: ``"fp32"`` or ``"amp"`` (CUDA autocast to fp16).
        optimizer: ``"sgd"`` (with momentum), ``"adam"`` or ``"adamw"``.

    Raises:
        ConfigError: for an unknown precision/optimizer, a bad batch size or patch size.
    """
    return estimate_training_breakdown(config, patch_size, batch_size, precision, optimizer).total


def estimate_inference_memory(
    config: UNetConfig | DeepMedicConfig,
    patch_size: tuple[int, int, int],
    batch_size: int,
    precision: str = "fp32",
) -> int:
    """Peak memory of one inference forward pass (no autograd), in bytes, overhead included.

    A conservative bound: fp32 parameters (and their fp16 copies under AMP), the input batch,
    the U-Net's skip tensors, two copies of the largest activation (a layer's input and output
    alive together), and the logits with their softmax. Arguments as in
    :func:`estimate_training_memory`.
    """
    batch_size = _check(precision, None, batch_size)
    t = _tally(config, patch_size, batch_size, precision)
    amp = precision in ("amp", "bf16")
    act = t.act
    total = 4 * t.params + (2 * t.weight_copies if amp else 0) + _TRANSIENT_COPIES * t.largest
    if isinstance(config, UNetConfig):
        shapes = config.stage_shapes(patch_size)
        total += 4 * batch_size * config.in_channels * math.prod(shapes[0])
        skips = zip(config.features_per_stage[:-1], shapes[:-1])
        total += sum(batch_size * f * math.prod(s) * act for f, s in skips)
        out_voxels = math.prod(shapes[0])
    else:
        seg = segment_shapes(config, patch_size)
        total += sum(4 * batch_size * config.in_channels * math.prod(s) for s in seg.inputs)
        total += batch_size * config.concat_features() * math.prod(seg.output) * act
        out_voxels = math.prod(seg.output)
    total += batch_size * config.num_classes * out_voxels * (act + 4)
    return int(total + FIXED_OVERHEAD_BYTES)
