"""Deep-supervised U-Net module built from a :class:`UNetConfig` (see unet_config.py).

Conv→InstanceNorm→LeakyReLU blocks, strided-conv downsampling, transposed-conv upsampling
with skip connections, and a 1x1(x1) logits head per decoder level for deep supervision.
A ``unet2d`` config builds the same layout from 2D layers (Conv2d, InstanceNorm2d,
ConvTranspose2d); it takes the same B×C×Z×Y×X volumes as the 3D network, folds its slice
axis into the batch, segments every slice in 2D and unfolds the outputs again, so training,
the sliding window and mirroring handle both alike.
"""

from __future__ import annotations

import torch
from torch import nn

from autoseg.networks.blocks import ConvNormAct, init_fan_in
from autoseg.networks.unet_config import UNetConfig

__all__ = ["DeepSupervisedUNet", "UNetConfig"]

Triple = tuple[int, int, int]


def _stage(
    cin: int, cout: int, kernel: tuple[int, ...], stride: tuple[int, ...], convs: int
) -> nn.Sequential:
    blocks = [ConvNormAct(cin, cout, kernel, stride)]
    blocks += [ConvNormAct(cout, cout, kernel) for _ in range(convs - 1)]
    return nn.Sequential(*blocks)


class DeepSupervisedUNet(nn.Module):
    """The U-Net described by a :class:`UNetConfig`.

    Input: B×in_channels×Z×Y×X with Z, Y, X multiples of ``config.patch_divisor()`` (for a
    2D U-Net any size along the slice axis: each slice is segmented on its own).
    Output: in training mode with deep supervision a list of B×num_classes×… logits, full
    resolution first, then each coarser decoder level (sizes ``deep_supervision_scales()``);
    otherwise one B×num_classes×Z×Y×X tensor.
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        feats, kernels, strides = config.features_per_stage, config.kernel_sizes, config.strides
        convs = config.convs_per_stage
        self.encoder = nn.ModuleList()
        cin = config.in_channels
        for s, cout in enumerate(feats):
            self.encoder.append(_stage(cin, cout, kernels[s], strides[s], convs))
            cin = cout
        levels = range(config.num_stages - 1)
        dims = config.spatial_dims
        transposed = nn.ConvTranspose2d if dims == 2 else nn.ConvTranspose3d
        head = nn.Conv2d if dims == 2 else nn.Conv3d
        self.upsample = nn.ModuleList(
            transposed(feats[s + 1], feats[s], strides[s + 1], stride=strides[s + 1])  # type: ignore[arg-type]
            for s in levels
        )
        self.decoder = nn.ModuleList(
            _stage(2 * feats[s], feats[s], kernels[s], (1,) * dims, convs) for s in levels
        )
        heads = len(config.deep_supervision_scales())
        self.heads = nn.ModuleList(head(feats[s], config.num_classes, 1) for s in range(heads))
        init_fan_in(self, negative_slope=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Segment a batch; see the class docstring for shapes."""
        self._check_input(x)
        axis = self.config.slice_axis
        if axis is None:
            return self._forward(x)
        # B×C×(slices along axis)×… -> (B·slices)×C×(2D slice), and back for every output.
        batch, slices = x.shape[0], x.shape[2 + axis]
        planes = x.movedim(2 + axis, 1).reshape(batch * slices, x.shape[1], *_plane(x, axis))
        outputs = self._forward(planes)
        unfold = [
            o.reshape(batch, slices, *o.shape[1:]).movedim(1, 2 + axis)
            for o in (outputs if isinstance(outputs, list) else [outputs])
        ]
        return unfold if isinstance(outputs, list) else unfold[0]

    def _forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        x = skips.pop()
        supervise = self.training and self.config.deep_supervision
        outputs: list[torch.Tensor] = []
        for level in range(len(self.decoder) - 1, -1, -1):
            x = self.upsample[level](x)
            x = self.decoder[level](torch.cat((x, skips[level]), dim=1))
            if supervise:
                outputs.append(self.heads[level](x))
        if supervise:
            return outputs[::-1]
        return self.heads[0](x)

    def _check_input(self, x: torch.Tensor) -> None:
        """Raise a ValueError naming the expected shape unless ``x`` fits the network."""
        divisor = self.config.patch_divisor()
        if (
            x.dim() != 5
            or x.shape[1] != self.config.in_channels
            or any(n % d for n, d in zip(x.shape[2:], divisor))
        ):
            raise ValueError(
                f"U-Net input must be B×{self.config.in_channels}×Z×Y×X with Z, Y, X multiples "
                f"of {list(divisor)}, got shape {list(x.shape)}"
            )


def _plane(x: torch.Tensor, axis: int) -> tuple[int, ...]:
    """The spatial shape of ``x`` without its slice axis."""
    return tuple(n for a, n in enumerate(x.shape[2:]) if a != axis)
