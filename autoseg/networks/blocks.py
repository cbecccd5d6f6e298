"""Building blocks of both network families: conv-norm-act, pre-activation conv, residual add.

Tensors are B×C×Z×Y×X. Kernel sizes, strides and paddings are per axis in (Z, Y, X) order.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ConvNormAct",
    "PreActConv",
    "add_residual",
    "center_crop",
    "init_fan_in",
]

Triple = tuple[int, int, int]


class ConvNormAct(nn.Module):
    """Conv → InstanceNorm (affine) → LeakyReLU(0.01, in place), 'same' padding: 3D for a
    kernel triple, 2D (Conv2d, InstanceNorm2d) for a kernel pair.

    With stride 1 the spatial size is kept; with stride 2 along an axis it is halved (the
    size must be even there). The convolution has no bias: instance norm removes it.

    Args:
        in_channels: Input feature maps.
        out_channels: Output feature maps.
        kernel_size: Odd kernel size per axis (Z, Y, X), or per axis of a slice.
        stride: Stride per axis (1 or 2; default 1); strided convolutions downsample the U-Net.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, ...],
        stride: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        padding = tuple(k // 2 for k in kernel_size)
        stride = stride or (1,) * len(kernel_size)
        conv: type[nn.Conv2d | nn.Conv3d] = nn.Conv2d if len(kernel_size) == 2 else nn.Conv3d
        norm = nn.InstanceNorm2d if len(kernel_size) == 2 else nn.InstanceNorm3d
        self.conv = conv(
            in_channels,
            out_channels,
            kernel_size,  # type: ignore[arg-type]  # a pair (2D) or a triple (3D)
            stride=stride,  # type: ignore[arg-type]
            padding=padding,  # type: ignore[arg-type]
            bias=False,
        )
        self.norm = norm(out_channels, eps=1e-5, affine=True)
        self.act = nn.LeakyReLU(0.01, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply conv, norm and activation."""
        return self.act(self.norm(self.conv(x)))


class PreActConv(nn.Module):
    """DeepMedic layer: [BatchNorm3d] → [PReLU] → [Dropout] → [edge padding] → Conv3d.

    The first layer of a pathway sees the image itself and uses neither norm nor activation
    (``pre_activation=False``). Without ``same_padding`` the convolution is 'valid' and the
    output shrinks by ``kernel - 1`` per axis; with it the input is padded by replicating its
    border voxels so the size is kept (DeepMedic's first FC layer).

    Args:
        in_channels: Input feature maps.
        out_channels: Output feature maps.
        kernel_size: Odd kernel size per axis (Z, Y, X).
        pre_activation: Apply (norm and) PReLU before the convolution.
        batch_norm: Use batch norm in the pre-activation.
        dropout: Drop probability applied before the convolution (0 disables it).
        same_padding: Replicate-pad so the output has the input's size.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Triple,
        *,
        pre_activation: bool = True,
        batch_norm: bool = True,
        dropout: float = 0.0,
        same_padding: bool = False,
    ) -> None:
        super().__init__()
        self.norm: nn.Module = (
            nn.BatchNorm3d(in_channels) if pre_activation and batch_norm else nn.Identity()
        )
        self.act: nn.Module = nn.PReLU(in_channels) if pre_activation else nn.Identity()
        self.drop: nn.Module = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        pads: list[int] = []
        for k in reversed(kernel_size):  # F.pad lists the last axis (X) first
            pads += [k // 2, k // 2]
        self.padding: tuple[int, ...] = tuple(pads) if same_padding and any(pads) else ()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the pre-activation, the optional padding and the convolution."""
        x = self.drop(self.act(self.norm(x)))
        if self.padding:
            x = F.pad(x, self.padding, mode="replicate")
        return self.conv(x)


def center_crop(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Crop the last three axes of ``x`` to ``shape``, centred (extra voxel at the end).

    Returns a view; ``shape`` must not exceed ``x``'s spatial shape.
    """
    size = x.shape[-3:]
    starts = [(s - t) // 2 for s, t in zip(size, shape)]
    return x[
        ...,
        starts[0] : starts[0] + shape[0],
        starts[1] : starts[1] + shape[1],
        starts[2] : starts[2] + shape[2],
    ]


def add_residual(out: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """DeepMedic residual: ``out + skip``, with ``skip`` centre-cropped and zero-padded in channels.

    ``skip`` (B×Cs×…) must have no more channels than ``out`` and at least its spatial size.
    """
    skip = center_crop(skip, tuple(out.shape[-3:]))
    missing = out.shape[1] - skip.shape[1]
    if missing:
        skip = F.pad(skip, (0, 0, 0, 0, 0, 0, 0, missing))
    return out + skip


def init_fan_in(module: nn.Module, negative_slope: float = 0.0) -> None:
    """He (fan-in) normal initialisation of every conv weight; zero biases.

    ``std = gain / sqrt(fan_in)`` with the gain of a (leaky) ReLU of ``negative_slope``, as in
    He et al. 2015, which DeepMedic and nnU-Net both use.
    """
    gain = math.sqrt(2.0 / (1.0 + negative_slope**2))
    for m in module.modules():
        if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d, nn.Conv2d, nn.ConvTranspose2d)):
            fan_in = m.weight.shape[1] * math.prod(m.weight.shape[2:])
            if isinstance(m, (nn.ConvTranspose3d, nn.ConvTranspose2d)):
                # weight is (in, out, k...); an output voxel sees in × prod(k / stride) inputs
                taps = math.prod(m.weight.shape[2:]) / math.prod(m.stride)
                fan_in = max(1, round(m.weight.shape[0] * taps))
            nn.init.normal_(m.weight, 0.0, gain / math.sqrt(fan_in))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
