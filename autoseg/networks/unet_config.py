"""Deep-supervised 3D U-Net configuration: plain frozen data for plans.json (no torch here).

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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from autoseg import strict
from autoseg.errors import ConfigError

__all__ = ["UNetConfig"]

Triple = tuple[int, int, int]
_OWNER = "UNetConfig"


@dataclass(frozen=True, slots=True, kw_only=True)
class UNetConfig:
    """Topology of a deep-supervised 3D U-Net; JSON round trip via to_dict / from_dict.

    Attributes:
        kind: Always ``"unet3d"`` (selects the builder).
        in_channels: Image channels (modalities), >= 1.
        num_classes: Output classes including background, >= 2.
        features_per_stage: Feature maps of each resolution stage (stage 0 = full resolution).
        kernel_sizes: Odd conv kernel size per stage, (Z, Y, X); e.g. (1, 3, 3) along a coarse z.
        strides: Downsampling stride per stage and axis, each 1 or 2; stage 0 is (1, 1, 1).
        convs_per_stage: Conv blocks per encoder stage and per decoder level, >= 1.
        deep_supervision: Return the logits of every decoder level in training mode.

    Raises:
        ConfigError: when lengths disagree or a value breaks the rules above.
    """

    kind: str = "unet3d"
    in_channels: int
    num_classes: int
    features_per_stage: tuple[int, ...]
    kernel_sizes: tuple[Triple, ...]
    strides: tuple[Triple, ...]
    convs_per_stage: int = 2
    deep_supervision: bool = True

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if self.kind != "unet3d":
            raise ConfigError(f"{_OWNER}: `kind` must be 'unet3d', got {self.kind!r}")
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
        kernels = strict.as_triple_tuple(_OWNER, "kernel_sizes", self.kernel_sizes, 1)
        strides = strict.as_triple_tuple(_OWNER, "strides", self.strides, 1)
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
        if self.strides[0] != (1, 1, 1):
            raise ConfigError(
                f"{_OWNER}: `strides[0]` must be [1, 1, 1], got {list(self.strides[0])}"
            )
        for s, stride in enumerate(self.strides):
            if any(v not in (1, 2) for v in stride):
                raise ConfigError(f"{_OWNER}: `strides[{s}]` must hold 1 or 2, got {list(stride)}")

    @property
    def num_stages(self) -> int:
        """Number of resolution stages (encoder depth including the bottleneck)."""
        return len(self.features_per_stage)

    def patch_divisor(self) -> Triple:
        """Product of the strides per axis (Z, Y, X): patch sizes must be multiples of it."""
        z, y, x = (math.prod(s[a] for s in self.strides) for a in range(3))
        return z, y, x

    def deep_supervision_scales(self) -> tuple[tuple[float, float, float], ...]:
        """Size of each output relative to the input, per axis; output 0 is (1, 1, 1).

        One entry per decoder level (``num_stages - 1``) with deep supervision, else one.
        """
        levels = self.num_stages - 1 if self.deep_supervision else 1
        scales = []
        for level in range(levels):
            down = [math.prod(s[a] for s in self.strides[: level + 1]) for a in range(3)]
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
        for stride in self.strides:
            shape = (shape[0] // stride[0], shape[1] // stride[1], shape[2] // stride[2])
            shapes.append(shape)
        return tuple(shapes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return {
            "kind": self.kind,
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
        strict.check_keys(_OWNER, data, _FIELDS)
        return cls(**{key: data[key] for key in _FIELDS})


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
