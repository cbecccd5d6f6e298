"""DeepMedic (Kamnitsas et al., MedIA 2016) as an ``nn.Module`` built from a DeepMedicConfig.

A *normal* pathway of valid 3D convolutions sees a segment at full resolution; each
*subsampled* pathway sees a wider context averaged over blocks of ``factor`` voxels per axis
(Z, Y, X). Pathway outputs are upsampled (each low-resolution voxel repeated ``factor`` times
per axis), centre-cropped to the normal pathway's output, concatenated, and passed through
pre-activation "FC" layers (convolutions: the first ``fc_first_kernel`` with replicate padding,
then 1x1x1) to the classifier. Layers are BatchNorm → PReLU → [Dropout] → Conv; the first
layer of each pathway convolves the image directly. A residual connection at layer ``i`` adds
the input of layer ``i - 1`` (centre-cropped, zero-padded in channels) to layer ``i``'s output.

The configs and the segment geometry are re-exported here; they live in torch-free modules
(``deepmedic_config.py``, ``deepmedic_geometry.py``) so that planning needs no torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from autoseg.networks.blocks import PreActConv, add_residual, init_fan_in
from autoseg.networks.deepmedic_config import (
    DeepMedicConfig,
    PathwayConfig,
    SubsampledPathwayConfig,
)
from autoseg.networks.deepmedic_geometry import (
    SegmentShapes,
    extract_pathway_inputs,
    input_boxes,
    receptive_field,
    segment_shapes,
)

__all__ = [
    "DeepMedic",
    "DeepMedicConfig",
    "PathwayConfig",
    "SegmentShapes",
    "SubsampledPathwayConfig",
    "extract_pathway_inputs",
    "input_boxes",
    "receptive_field",
    "segment_shapes",
]

Triple = tuple[int, int, int]


class _Pathway(nn.Module):
    """Valid pre-activation convolutions with DeepMedic's residual connections."""

    def __init__(self, in_channels: int, path: PathwayConfig, batch_norm: bool) -> None:
        super().__init__()
        self.residual_at = frozenset(path.residual_at)
        channels = (in_channels, *path.features)
        self.layers = nn.ModuleList(
            PreActConv(
                channels[i],
                channels[i + 1],
                path.kernels[i],
                pre_activation=i > 0,
                batch_norm=batch_norm,
            )
            for i in range(len(path.features))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        previous_input = x
        for i, layer in enumerate(self.layers):
            out = layer(x)
            if i in self.residual_at:
                out = add_residual(out, previous_input)
            previous_input, x = x, out
        return x


def _upsample_crop(x: torch.Tensor, factor: Triple, shape: Triple) -> torch.Tensor:
    """Repeat each voxel ``factor`` times per axis and centre-crop to ``shape``.

    Only the low-resolution voxels that reach the crop are repeated (expand + reshape: the
    same as ``repeat_interleave`` along each axis, without index tensors).
    """
    lo, hi, starts = [], [], []
    for m, f, n in zip(x.shape[2:], factor, shape):
        offset = (m * f - n) // 2  # crop start within the fully repeated grid
        lo.append(offset // f)
        hi.append(-(-(offset + n) // f))
        starts.append(offset - lo[-1] * f)
    x = x[:, :, lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    b, c, z, y, w = x.shape
    fz, fy, fx = factor
    x = x[:, :, :, None, :, None, :, None].expand(b, c, z, fz, y, fy, w, fx)
    x = x.reshape(b, c, z * fz, y * fy, w * fx)
    (sz, sy, sx), (nz, ny, nx) = starts, shape
    return x[:, :, sz : sz + nz, sy : sy + ny, sx : sx + nx]


class DeepMedic(nn.Module):
    """The DeepMedic network described by a :class:`DeepMedicConfig`.

    ``forward([normal, sub_1, ...])`` takes one B×in_channels×… tensor per pathway with the
    shapes of :func:`segment_shapes` (cut them with :func:`extract_pathway_inputs`) and
    returns B×num_classes×output logits, the output shape being the normal input shape minus
    the normal receptive field plus one.
    """

    def __init__(self, config: DeepMedicConfig) -> None:
        super().__init__()
        self.config = config
        self.normal = _Pathway(config.in_channels, config.normal, config.batch_norm)
        self.subsampled = nn.ModuleList(
            _Pathway(config.in_channels, sub, config.batch_norm) for sub in config.subsampled
        )
        channels = (config.concat_features(), *config.fc_features)
        self.fc = nn.ModuleList(
            PreActConv(
                channels[i],
                channels[i + 1],
                config.fc_first_kernel if i == 0 else (1, 1, 1),
                batch_norm=config.batch_norm,
                dropout=config.dropout[i],
                same_padding=i == 0,
            )
            for i in range(len(config.fc_features))
        )
        self.classifier = PreActConv(
            channels[-1],
            config.num_classes,
            (1, 1, 1),
            batch_norm=config.batch_norm,
            dropout=config.dropout[-1],
        )
        init_fan_in(self)

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Logits B×num_classes×output for the pathway inputs ``[normal, sub_1, ...]``."""
        x = self.pathway_features(inputs)
        for layer in self.fc:
            x = layer(x)
        return self.classifier(x)

    def pathway_features(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Concatenated, aligned outputs of every pathway on the output grid (before the FCs)."""
        shapes = self._check_inputs(inputs)
        features = [self.normal(inputs[0])]
        for pathway, sub, x in zip(self.subsampled, self.config.subsampled, inputs[1:]):
            features.append(_upsample_crop(pathway(x), sub.factor, shapes.output))
        return features[0] if len(features) == 1 else torch.cat(features, dim=1)

    def _check_inputs(self, inputs: Sequence[torch.Tensor]) -> SegmentShapes:
        config = self.config
        if len(inputs) != 1 + len(config.subsampled):
            raise ValueError(
                f"DeepMedic expects {1 + len(config.subsampled)} pathway inputs, got {len(inputs)}"
            )
        rf = config.normal.receptive_field()
        output = tuple(n - r + 1 for n, r in zip(inputs[0].shape[2:], rf))
        if inputs[0].dim() != 5 or min(output) < 1:
            raise ValueError(
                f"normal pathway input must be B×C×Z×Y×X of at least the receptive field "
                f"{list(rf)}, got shape {list(inputs[0].shape)}"
            )
        shapes = segment_shapes(config, output)
        got = [tuple(x.shape[1:]) for x in inputs]
        wanted = [(config.in_channels, *s) for s in shapes.inputs]
        if got != wanted:
            raise ValueError(
                f"DeepMedic pathway inputs (C, Z, Y, X) must be {wanted} for output {list(output)}"
                f" (see segment_shapes), got {got}"
            )
        return shapes
