"""Deep-supervised U-Net configuration (3D, or 2D on slices): plain frozen data for plans.json
(no torch here).

Encoder stage ``s`` applies ``convs_per_stage`` Conv→InstanceNorm→LeakyReLU blocks, the first
with stride ``strides[s]`` (strided-conv downsampling; stage 0 keeps the resolution). Decoder
level ``s`` (``num_stages - 2`` down to 0) upsamples with a transposed convolution of
kernel = stride = ``strides[s + 1]``, concatenates the encoder output of stage ``s`` and applies
``convs_per_stage`` blocks; a 1x1x1 head gives the logits of that level. In training mode with
deep supervision every decoder level's logits are returned (full resolution first); otherwise
only the full-resolution logits.

Example:
    Four stages, the first two keeping a coarse z axis (kernel 1x3x3, stride 1 along z)::

        UNetConfig(in_channels=1, num_classes=3, features_per_stage=(32, 64, 128, 256),
                   kernel_sizes=((1, 3, 3), (1, 3, 3), (3, 3, 3), (3, 3, 3)),
                   strides=((1, 1, 1), (1, 2, 2), (2, 2, 2), (2, 2, 2)))

    has ``patch_divisor() == (4, 8, 8)``: a patch (Z, Y, X) must be a multiple of it, e.g.
    (20, 160, 160); the outputs in training are 20x160x160, 20x80x80 and 10x40x40.

A ``kind="unet2d"`` config describes a 2D U-Net (Conv2d) on slices across ``slice_axis``:
its kernels and strides are pairs over the two other axes, in (Z, Y, X) order. Everything
that works per axis of a volume (patch divisor, stage shapes, the memory and compute
models) sees it through :meth:`UNetConfig.kernels_3d` / :meth:`UNetConfig.strides_3d`: the
pairs with a 1 inserted along the slice axis. Its patches are one voxel thick along that
axis (the network folds that axis into the batch, so a thicker block is a batch of slices)::

    UNetConfig(kind="unet2d", slice_axis=0, in_channels=1, num_classes=2,
               features_per_stage=(32, 64), kernel_sizes=((3, 3), (3, 3)),
               strides=((1, 1), (2, 2)))

has ``patch_divisor() == (1, 2, 2)`` and takes patches such as (1, 64, 64).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from autoseg import strict
from autoseg.errors import ConfigError

__all__ = ["UNET_KINDS", "UNetConfig"]

Triple = tuple[int, int, int]
_OWNER = "UNetConfig"
UNET_KINDS = ("unet3d", "unet2d")
"""The U-Net kinds: a 3D network, or a 2D network on slices."""


def _axis_tuples(name: str, value: Any, dims: int) -> tuple[tuple[int, ...], ...]:
    """A sequence of per-axis tuples of ``dims`` positive integers (triples or pairs)."""
    if dims == 3:
        return strict.as_triple_tuple(_OWNER, name, value, 1)
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{_OWNER}: `{name}` must be a list, got {value!r}")
    rows = []
    for i, row in enumerate(value):
        pair = strict.as_int_tuple(_OWNER, f"{name}[{i}]", row, 1)
        if len(pair) != 2:
            raise ConfigError(
                f"{_OWNER}: `{name}[{i}]` of a 2D U-Net needs 2 values (the slice plane), "
                f"got {list(pair)}"
            )
        rows.append(pair)
    return tuple(rows)


@dataclass(frozen=True, slots=True, kw_only=True)
class UNetConfig:
    """Topology of a deep-supervised U-Net; JSON round trip via to_dict / from_dict.

    Attributes:
        kind: ``"unet3d"`` or ``"unet2d"`` (selects the builder).
        slice_axis: ``unet2d`` only: the axis (0 = Z, 1 = Y, 2 = X) the 2D network slices
            across; None for ``unet3d``.
        in_channels: Image channels (modalities), >= 1.
        num_classes: Output classes including background, >= 2.
        features_per_stage: Feature maps of each resolution stage (stage 0 = full resolution).
        kernel_sizes: Odd conv kernel size per stage, (Z, Y, X); e.g. (1, 3, 3) along a coarse z
            (pairs over the slice plane for ``unet2d``).
        strides: Downsampling stride per stage and axis, each 1 or 2; stage 0 is all 1
            (pairs for ``unet2d``).
        convs_per_stage: Conv blocks per encoder stage and per decoder level, >= 1.
        deep_supervision: Return the logits of every decoder level in training mode.

    Raises:
        ConfigError: when lengths disagree or a value breaks the rules above.
    """

    kind: str = "unet3d"
    slice_axis: int | None = None
    in_channels: int
    num_classes: int
    features_per_stage: tuple[int, ...]
    kernel_sizes: tuple[tuple[int, ...], ...]
    strides: tuple[tuple[int, ...], ...]
    convs_per_stage: int = 2
    deep_supervision: bool = True

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if self.kind not in UNET_KINDS:
            raise ConfigError(f"{_OWNER}: `kind` must be 'unet3d' or 'unet2d', got {self.kind!r}")
        if self.kind == "unet2d":
            axis = strict.as_int(_OWNER, "slice_axis", self.slice_axis, 0)
            if axis > 2:
                raise ConfigError(f"{_OWNER}: `slice_axis` must be 0, 1 or 2, got {axis}")
            set_(self, "slice_axis", axis)
        elif self.slice_axis is not None:
            raise ConfigError(f"{_OWNER}: `slice_axis` is for 'unet2d' only, got {self.slice_axis}")
        set_(self, "in_channels", strict.as_int(_OWNER, "in_channels", self.in_channels, 1))
        set_(self, "num_classes", strict.as_int(_OWNER, "num_classes", self.num_classes, 2))
        set_(
            self,
            "convs_per_stage",
            strict.as_int(_OWNER, "convs_per_stage", self.convs_per_stage, 1),
        )
        set_(
            self,
            "deep_supervision",
            strict.as_bool(_OWNER, "deep_supervision", self.deep_supervision),
        )
        features = strict.as_int_tuple(_OWNER, "features_per_stage", self.features_per_stage, 1)
        kernels = _axis_tuples("kernel_sizes", self.kernel_sizes, self.spatial_dims)
        strides = _axis_tuples("strides", self.strides, self.spatial_dims)
        set_(self, "features_per_stage", features)
        set_(self, "kernel_sizes", kernels)
        set_(self, "strides", strides)
        self._validate_topology()

    def _validate_topology(self) -> None:
        n = len(self.features_per_stage)
        if n < 2:
            raise ConfigError(f"{_OWNER}: needs at least 2 stages, got {self.features_per_stage=}")
        if len(self.kernel_sizes) != n or len(self.strides) != n:
            raise ConfigError(
                f"{_OWNER}: features_per_stage, kernel_sizes and strides need one entry per "
                f"stage, got lengths ({n}, {len(self.kernel_sizes)}, {len(self.strides)})"
            )
        for s, kernel in enumerate(self.kernel_sizes):
            if any(k % 2 == 0 for k in kernel):
                raise ConfigError(f"{_OWNER}: `kernel_sizes[{s}]` must be odd, got {list(kernel)}")
        if any(v != 1 for v in self.strides[0]):
            raise ConfigError(f"{_OWNER}: `strides[0]` must be all 1, got {list(self.strides[0])}")
        for s, stride in enumerate(self.strides):
            if any(v not in (1, 2) for v in stride):
                raise ConfigError(f"{_OWNER}: `strides[{s}]` must hold 1 or 2, got {list(stride)}")

    @property
    def spatial_dims(self) -> int:
        """3 for ``unet3d``, 2 for ``unet2d`` (the dimension of its convolutions)."""
        return 2 if self.kind == "unet2d" else 3

    def _embed(self, values: tuple[int, ...]) -> Triple:
        if self.slice_axis is None:
            return values[0], values[1], values[2]
        full = list(values)
        full.insert(self.slice_axis, 1)
        return full[0], full[1], full[2]

    def kernels_3d(self) -> tuple[Triple, ...]:
        """Kernel sizes per stage as (Z, Y, X) triples (1 along a 2D U-Net's slice axis)."""
        return tuple(self._embed(k) for k in self.kernel_sizes)

    def strides_3d(self) -> tuple[Triple, ...]:
        """Strides per stage as (Z, Y, X) triples (1 along a 2D U-Net's slice axis)."""
        return tuple(self._embed(s) for s in self.strides)

    @property
    def num_stages(self) -> int:
        """Number of resolution stages (encoder depth including the bottleneck)."""
        return len(self.features_per_stage)

    def patch_divisor(self) -> Triple:
        """Product of the strides per axis (Z, Y, X): patch sizes must be multiples of it."""
        strides = self.strides_3d()
        z, y, x = (math.prod(s[a] for s in strides) for a in range(3))
        return z, y, x

    def deep_supervision_scales(self) -> tuple[tuple[float, float, float], ...]:
        """Size of each output relative to the input, per axis; output 0 is (1, 1, 1).

        One entry per decoder level (``num_stages - 1``) with deep supervision, else one.
        """
        levels = self.num_stages - 1 if self.deep_supervision else 1
        strides = self.strides_3d()
        scales = []
        for level in range(levels):
            down = [math.prod(s[a] for s in strides[: level + 1]) for a in range(3)]
            scales.append((1.0 / down[0], 1.0 / down[1], 1.0 / down[2]))
        return tuple(scales)

    def check_patch_size(self, patch_size: tuple[int, ...]) -> Triple:
        """Return ``patch_size`` as an int triple if it is a positive multiple of the divisor.

        Raises:
            ConfigError: naming the patch size and the divisor otherwise.
        """
        patch = strict.as_triple(_OWNER, "patch_size", patch_size, 1)
        divisor = self.patch_divisor()
        if any(p % d for p, d in zip(patch, divisor)):
            raise ConfigError(
                f"{_OWNER}: patch size {list(patch)} must be a multiple of the stride product "
                f"{list(divisor)} along each axis (Z, Y, X)"
            )
        return patch

    def stage_shapes(self, patch_size: tuple[int, ...]) -> tuple[Triple, ...]:
        """Spatial shape (Z, Y, X) of every stage's feature maps for a patch."""
        shape = self.check_patch_size(patch_size)
        shapes = []
        for stride in self.strides_3d():
            shape = (shape[0] // stride[0], shape[1] // stride[1], shape[2] // stride[2])
            shapes.append(shape)
        return tuple(shapes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists); ``slice_axis`` only for ``unet2d``."""
        return {
            "kind": self.kind,
            **({} if self.slice_axis is None else {"slice_axis": self.slice_axis}),
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "features_per_stage": list(self.features_per_stage),
            "kernel_sizes": [list(k) for k in self.kernel_sizes],
            "strides": [list(s) for s in self.strides],
            "convs_per_stage": self.convs_per_stage,
            "deep_supervision": self.deep_supervision,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UNetConfig:
        """Strict inverse of :meth:`to_dict`: every key required, unknown keys rejected."""
        fields = _FIELDS_2D if data.get("kind") == "unet2d" else _FIELDS
        strict.check_keys(_OWNER, data, fields)
        return cls(**{key: data[key] for key in fields})


_FIELDS = (
    "kind",
    "in_channels",
    "num_classes",
    "features_per_stage",
    "kernel_sizes",
    "strides",
    "convs_per_stage",
    "deep_supervision",
)
_FIELDS_2D = ("kind", "slice_axis", *_FIELDS[1:])
