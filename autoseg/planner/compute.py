"""Analytic compute of one training iteration (GFLOP), for planning on CPUs.

On a GPU memory is the binding limit; on a CPU a plan that fits in RAM can still take
minutes per iteration (nnU-Net's default plan takes ~23 s per iteration on a 2-core CPU).
The planner therefore also keeps the estimated compute of an iteration under a budget.
Counted: multiply-adds of every convolution (2 FLOP each); backward is taken as twice the
forward. Norms, activations and the loss are small next to the convolutions and left out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from autoseg.networks import DeepMedicConfig, UNetConfig
from autoseg.networks.deepmedic_geometry import segment_shapes

__all__ = ["BACKWARD_FACTOR", "estimate_forward_gflops", "estimate_training_gflops"]

BACKWARD_FACTOR = 2.0
"""Backward compute relative to forward (input and weight gradients)."""


def _conv_flops(kernel: Sequence[int], cin: int, cout: int, out_voxels: int) -> float:
    return 2.0 * math.prod(kernel) * cin * cout * out_voxels


def _unet_forward(config: UNetConfig, patch: Sequence[int]) -> float:
    shapes = config.stage_shapes(tuple(patch))
    feats, kernels, convs = config.features_per_stage, config.kernels_3d(), config.convs_per_stage
    total = 0.0
    cin = config.in_channels
    for s, (f, k) in enumerate(zip(feats, kernels)):
        voxels = math.prod(shapes[s])
        total += _conv_flops(k, cin, f, voxels) + (convs - 1) * _conv_flops(k, f, f, voxels)
        cin = f
    heads = len(config.deep_supervision_scales())
    for s in range(config.num_stages - 1):
        voxels = math.prod(shapes[s])
        # Transposed conv with kernel = stride: one multiply-add per output voxel and channel pair.
        total += _conv_flops((1, 1, 1), feats[s + 1], feats[s], voxels)
        total += _conv_flops(kernels[s], 2 * feats[s], feats[s], voxels)
        total += (convs - 1) * _conv_flops(kernels[s], feats[s], feats[s], voxels)
        if s < heads:
            total += _conv_flops((1, 1, 1), feats[s], config.num_classes, voxels)
    return total


def _pathway_flops(
    features: Sequence[int], kernels: Sequence[Sequence[int]], cin: int, in_shape: Sequence[int]
) -> float:
    total, shape = 0.0, list(in_shape)
    for f, k in zip(features, kernels):
        shape = [n - kk + 1 for n, kk in zip(shape, k)]
        total += _conv_flops(k, cin, f, math.prod(shape))
        cin = f
    return total


def _deepmedic_forward(config: DeepMedicConfig, output: Sequence[int]) -> float:
    shapes = segment_shapes(config, tuple(output))
    total = _pathway_flops(
        config.normal.features, config.normal.kernels, config.in_channels, shapes.normal
    )
    for sub, in_shape in zip(config.subsampled, shapes.subsampled):
        total += _pathway_flops(sub.features, sub.kernels, config.in_channels, in_shape)
    voxels = math.prod(shapes.output)
    cin = config.concat_features()
    for i, f in enumerate(config.fc_features):
        kernel = config.fc_first_kernel if i == 0 else (1, 1, 1)
        total += _conv_flops(kernel, cin, f, voxels)
        cin = f
    return total + _conv_flops((1, 1, 1), cin, config.num_classes, voxels)


def estimate_forward_gflops(
    config: UNetConfig | DeepMedicConfig, patch_size: Sequence[int], batch_size: int = 1
) -> float:
    """Forward compute (GFLOP) for a batch; ``patch_size`` is DeepMedic's *output* segment."""
    if isinstance(config, UNetConfig):
        per_sample = _unet_forward(config, patch_size)
    else:
        per_sample = _deepmedic_forward(config, patch_size)
    return per_sample * batch_size / 1e9


def estimate_training_gflops(
    config: UNetConfig | DeepMedicConfig, patch_size: Sequence[int], batch_size: int
) -> float:
    """Forward + backward compute (GFLOP) of one training iteration."""
    return estimate_forward_gflops(config, patch_size, batch_size) * (1.0 + BACKWARD_FACTOR)
