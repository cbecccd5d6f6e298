"""DeepMedic segment geometry: receptive fields, segment shapes and pathway inputs (numpy only).

The single source of truth for alignment, used by the module (:mod:`autoseg.networks.deepmedic`
re-exports these), the training sampler and inference tiling. For an output box of ``n``
voxels starting at full-resolution voxel ``s`` (per axis), a subsampled pathway of factor ``f``
and receptive field ``r`` (own voxels) computes ``m = ceil(n / f)`` voxels. Repeated ``f``
times each, they cover the ``m * f`` full-resolution voxels starting at ``s - (m * f - n) // 2``,
which the network centre-crops to the ``n`` output voxels; the pathway's input is the
``(m + r - 1) * f`` voxels starting ``(r - 1) / 2 * f`` before that, averaged over blocks of
``f``. Every output voxel therefore receives the features of the block that contains it, and
every output shape >= 1 is produced exactly (nothing is rounded).

Tiling: when an output tile's shape is a multiple of every factor, its blocks start at the
tile's start, so tiles whose starts lie on that lattice share one block grid and stitch
without seams (the first FC layer's replicate padding aside, as in DeepMedic).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from autoseg.errors import InputError
from autoseg.networks.deepmedic_config import DeepMedicConfig

__all__ = [
    "SegmentShapes",
    "extract_pathway_inputs",
    "input_boxes",
    "receptive_field",
    "segment_shapes",
]

Triple = tuple[int, int, int]


def receptive_field(config: DeepMedicConfig) -> dict[str, Triple]:
    """Receptive field of every pathway in full-resolution voxels, per axis (Z, Y, X).

    Keys are ``normal``, ``subsampled_1``, ...; a subsampled pathway's field is its field in
    its own voxels times its factor. The first FC layer widens the network's field by
    ``fc_first_kernel - 1`` more voxels (it pads, so input shapes do not change).
    """
    fields = {"normal": config.normal.receptive_field()}
    for i, sub in enumerate(config.subsampled):
        own = sub.receptive_field()
        fields[f"subsampled_{i + 1}"] = (
            own[0] * sub.factor[0],
            own[1] * sub.factor[1],
            own[2] * sub.factor[2],
        )
    return fields


@dataclass(frozen=True, slots=True)
class SegmentShapes:
    """Input shapes of every pathway for one output shape, all (Z, Y, X).

    Attributes:
        output: Output segment shape (full-resolution voxels).
        normal: Normal pathway input shape (full-resolution voxels).
        subsampled: Each subsampled pathway's input shape in its own (downsampled) voxels.
        subsampled_outputs: Each subsampled pathway's output shape in its own voxels.
    """

    output: Triple
    normal: Triple
    subsampled: tuple[Triple, ...]
    subsampled_outputs: tuple[Triple, ...]

    @property
    def inputs(self) -> tuple[Triple, ...]:
        """Input shape of every pathway in forward order (normal first)."""
        return (self.normal, *self.subsampled)


def _triple(values: Iterable[int]) -> Triple:
    z, y, x = values
    return z, y, x


def _check_triple(name: str, value: Sequence[int], minimum: int | None) -> Triple:
    """``value`` as an int triple; InputError unless 3 integers (each >= ``minimum``)."""
    try:
        values = tuple(operator.index(v) for v in value)
    except TypeError:
        values = ()
    if len(values) != 3 or (minimum is not None and min(values) < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise InputError(f"DeepMedic {name} must be 3 integers{bound} (Z, Y, X), got {list(value)}")
    return _triple(values)


def segment_shapes(config: DeepMedicConfig, output_shape: Sequence[int]) -> SegmentShapes:
    """Input shape of every pathway that yields exactly ``output_shape`` output voxels.

    Every output shape >= 1 per axis is produced exactly (nothing is rounded): a subsampled
    pathway of factor ``f`` computes ``ceil(n / f)`` voxels per axis, and its upsampled output
    is centre-cropped to ``n``.

    Example:
        With the paper's layers (receptive field 17) and factor 3, an output of 9x9x9 needs a
        normal input of 25x25x25 and a subsampled input of 19x19x19 (= 3 + 17 - 1).

    Raises:
        InputError: if ``output_shape`` is not three integers >= 1.
    """
    out = _check_triple("output shape", output_shape, 1)
    rf = config.normal.receptive_field()
    normal = _triple(n + r - 1 for n, r in zip(out, rf))
    inputs, outputs = [], []
    for sub in config.subsampled:
        m = _triple(-(-n // f) for n, f in zip(out, sub.factor))
        outputs.append(m)
        inputs.append(_triple(v + r - 1 for v, r in zip(m, sub.receptive_field())))
    return SegmentShapes(out, normal, tuple(inputs), tuple(outputs))


def input_boxes(
    config: DeepMedicConfig, output_start: Sequence[int], output_shape: Sequence[int]
) -> tuple[tuple[Triple, Triple], ...]:
    """Full-resolution ``(start, shape)`` box read by every pathway (normal first).

    ``output_start`` is the first output voxel (may be negative or beyond the volume; the
    caller pads). A subsampled box spans whole blocks: its shape is its input shape times its
    factor.
    """
    start = _check_triple("output start", output_start, None)
    shapes = segment_shapes(config, output_shape)
    half = tuple((r - 1) // 2 for r in config.normal.receptive_field())
    boxes = [(_triple(s - h for s, h in zip(start, half)), shapes.normal)]
    for sub, m, size in zip(config.subsampled, shapes.subsampled_outputs, shapes.subsampled):
        rf = sub.receptive_field()
        first = _triple(
            s - (mi * f - n) // 2 - (r - 1) // 2 * f
            for s, mi, f, n, r in zip(start, m, sub.factor, shapes.output, rf)
        )
        boxes.append((first, _triple(v * f for v, f in zip(size, sub.factor))))
    return tuple(boxes)


def _crop_padded(volume: np.ndarray, start: Triple, shape: Triple, pad_value: float) -> np.ndarray:
    """The C×shape box of ``volume`` at ``start``; voxels outside the volume get ``pad_value``."""
    out = np.full((volume.shape[0], *shape), pad_value, dtype=volume.dtype)
    src, dst = [], []
    for s, n, size in zip(start, shape, volume.shape[1:]):
        lo, hi = max(s, 0), min(s + n, size)
        if hi <= lo:
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - s, hi - s))
    dst_index = (slice(None), *dst)
    src_index = (slice(None), *src)
    out[dst_index] = volume[src_index]
    return out


def _block_mean(region: np.ndarray, factor: Triple) -> np.ndarray:
    """Mean over non-overlapping blocks of ``factor`` voxels (C×Z×Y×X, sizes multiples of it).

    torch's average pooling (imported here so this module stays torch-free for the planner)
    is about twice as fast as NumPy's reshaped mean; training and inference both use it.
    """
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(region, dtype=np.float32))
    pooled = torch.nn.functional.avg_pool3d(tensor[None], factor, stride=factor)[0]
    return pooled.numpy().astype(region.dtype, copy=False)


def extract_pathway_inputs(
    volume: np.ndarray,
    output_start: Sequence[int],
    output_shape: Sequence[int],
    config: DeepMedicConfig,
    pad_value: float = 0.0,
) -> list[np.ndarray]:
    """Cut the input of every pathway for the output box ``[start, start + shape)``.

    Args:
        volume: C×Z×Y×X image (float).
        output_start: First output voxel (Z, Y, X); the box may reach over the border.
        output_shape: Output voxels per axis (Z, Y, X), each >= 1.
        config: The network configuration.
        pad_value: Value of voxels outside the volume (before block averaging).

    Returns:
        ``[normal, subsampled_1, ...]``, each C×… with the shapes of :func:`segment_shapes`;
        subsampled inputs are means over blocks of ``factor`` voxels.

    Raises:
        InputError: if ``volume`` is not 4D or the box is malformed.
    """
    if volume.ndim != 4:
        raise InputError(f"DeepMedic input volume must be C×Z×Y×X, got shape {volume.shape}")
    boxes = input_boxes(config, output_start, output_shape)
    inputs = [_crop_padded(volume, *boxes[0], pad_value)]
    for (start, shape), sub in zip(boxes[1:], config.subsampled):
        region = _crop_padded(volume, start, shape, pad_value)
        inputs.append(_block_mean(region, sub.factor))
    return inputs
