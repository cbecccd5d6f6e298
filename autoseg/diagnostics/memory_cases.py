"""The configurations the memory model is validated on (tests and bench/memory_model.py).

Small enough that one measured training step takes well under a second on one CPU thread, and
diverse: U-Nets of 2 to 5 stages with anisotropic kernels and strides, 1 to 4 channels, batch
1 to 4, with and without deep supervision; 2D U-Nets slicing across each axis, with the
large batches 2D plans take; DeepMedics with 0 to 2 subsampled pathways, the
paper's 8 layers and residuals, anisotropic factors, batch norm off, several FC layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autoseg.networks import DeepMedicConfig, PathwayConfig, SubsampledPathwayConfig, UNetConfig

__all__ = [
    "ValidationCase",
    "deepmedic_validation_cases",
    "unet2d_validation_cases",
    "unet_validation_cases",
]


@dataclass(frozen=True, slots=True)
class ValidationCase:
    """One configuration the memory model is validated on (tests and bench/memory_model.py)."""

    name: str
    config: UNetConfig | DeepMedicConfig
    patch_size: tuple[int, int, int]
    batch_size: int
    optimizer: str = "sgd"


def _unet(
    name: str,
    c: int,
    k: int,
    feats: tuple[int, ...],
    kernels: Any,
    strides: Any,
    patch: tuple[int, int, int],
    batch: int,
    convs: int = 2,
    ds: bool = True,
    optimizer: str = "sgd",
) -> ValidationCase:
    config = UNetConfig(
        in_channels=c,
        num_classes=k,
        features_per_stage=feats,
        kernel_sizes=kernels,
        strides=strides,
        convs_per_stage=convs,
        deep_supervision=ds,
    )
    return ValidationCase(name, config, patch, batch, optimizer)


def unet_validation_cases() -> tuple[ValidationCase, ...]:
    """Nine small, diverse U-Nets (depth 2-5, anisotropic kernels/strides, 1-4 channels)."""
    iso, flat = (3, 3, 3), (1, 3, 3)
    one, half, full = (1, 1, 1), (1, 2, 2), (2, 2, 2)
    return (
        _unet("2 stages, 1 ch", 1, 2, (4, 8), (iso, iso), (one, full), (16, 16, 16), 1),
        _unet(
            "3 stages, anisotropic",
            2,
            3,
            (8, 16, 32),
            (flat, flat, iso),
            (one, half, full),
            (8, 32, 32),
            2,
        ),
        _unet(
            "4 stages, 4 ch",
            4,
            4,
            (4, 8, 16, 32),
            (iso,) * 4,
            (one, full, full, full),
            (16, 16, 16),
            1,
        ),
        _unet(
            "1 conv/stage, no DS",
            1,
            2,
            (4, 8, 16),
            (iso,) * 3,
            (one, full, full),
            (16, 16, 16),
            3,
            convs=1,
            ds=False,
        ),
        _unet(
            "3 convs/stage, 3 ch",
            3,
            5,
            (4, 8, 16),
            (flat, iso, iso),
            (one, half, full),
            (8, 16, 16),
            2,
            convs=3,
        ),
        _unet(
            "5 stages, capped",
            1,
            2,
            (4, 8, 16, 32, 32),
            (flat, flat, iso, iso, iso),
            (one, half, full, full, half),
            (8, 32, 32),
            1,
        ),
        _unet(
            "coarse x axis", 2, 2, (8, 16), ((3, 3, 1), (3, 3, 1)), (one, (2, 2, 1)), (8, 8, 16), 4
        ),
        _unet(
            "adam",
            1,
            3,
            (4, 8, 16),
            (iso,) * 3,
            (one, full, full),
            (16, 16, 16),
            2,
            optimizer="adam",
        ),
        _unet("wider, batch 2", 1, 2, (16, 32, 64), (iso,) * 3, (one, full, full), (16, 16, 16), 2),
    )


def _unet2d(
    name: str,
    axis: int,
    c: int,
    k: int,
    feats: tuple[int, ...],
    strides: Any,
    patch: tuple[int, int, int],
    batch: int,
    ds: bool = True,
) -> ValidationCase:
    config = UNetConfig(
        kind="unet2d",
        slice_axis=axis,
        in_channels=c,
        num_classes=k,
        features_per_stage=feats,
        kernel_sizes=((3, 3),) * len(feats),
        strides=strides,
        deep_supervision=ds,
    )
    return ValidationCase(name, config, patch, batch)


def unet2d_validation_cases() -> tuple[ValidationCase, ...]:
    """Five small 2D U-Nets (slicing across Z, Y and X; 2 to 4 stages; batches up to 12)."""
    one, full, flat = (1, 1), (2, 2), (1, 2)
    return (
        _unet2d("2D across Z", 0, 1, 2, (8, 16, 32), (one, full, full), (1, 32, 32), 12),
        _unet2d("2D across Y, 2 ch", 1, 2, 3, (4, 8), (one, full), (16, 1, 16), 6),
        _unet2d(
            "2D across X, no DS", 2, 1, 4, (4, 8, 16), (one, full, full), (16, 16, 1), 8, False
        ),
        _unet2d(
            "2D, 4 stages, one axis pooled last",
            0,
            3,
            2,
            (4, 8, 16, 16),
            (one, full, full, flat),
            (1, 16, 32),
            4,
        ),
        _unet2d("2D, batch 1", 0, 1, 3, (8, 16), (one, full), (1, 24, 24), 1),
    )


def _path(
    feats: tuple[int, ...], kernel: tuple[int, int, int] = (3, 3, 3), residual: tuple[int, ...] = ()
) -> PathwayConfig:
    return PathwayConfig(features=feats, kernels=(kernel,) * len(feats), residual_at=residual)


def _sub(factor: tuple[int, int, int], path: PathwayConfig) -> SubsampledPathwayConfig:
    return SubsampledPathwayConfig(
        factor=factor, features=path.features, kernels=path.kernels, residual_at=path.residual_at
    )


def deepmedic_validation_cases() -> tuple[ValidationCase, ...]:
    """Nine small, diverse DeepMedics (0-2 subsampled pathways, anisotropy, BN off, dropout)."""
    small = _path((4, 4, 8, 8), residual=(3,))
    paper = _path((4, 4, 6, 6, 6, 6, 8, 8), residual=(3, 5, 7))
    flat = _path((4, 6, 6, 8), (1, 3, 3), residual=(2,))

    def dm(
        c: int,
        k: int,
        normal: PathwayConfig,
        subs: tuple[SubsampledPathwayConfig, ...],
        fc: tuple[int, ...] = (16, 16),
        **kw: Any,
    ) -> DeepMedicConfig:
        dropout = kw.pop("dropout", (0.0,) + (0.5,) * len(fc))
        return DeepMedicConfig(
            in_channels=c,
            num_classes=k,
            normal=normal,
            subsampled=subs,
            fc_features=fc,
            dropout=dropout,
            **kw,
        )

    cases = [
        ("normal pathway only", dm(1, 2, small, (), (16,)), (4, 4, 4), 2, "sgd"),
        ("paper layers, factor 3", dm(2, 3, paper, (_sub((3, 3, 3), paper),)), (3, 3, 3), 1, "sgd"),
        (
            "factors 3 and 5",
            dm(1, 2, small, (_sub((3, 3, 3), small), _sub((5, 5, 5), small))),
            (5, 5, 5),
            1,
            "sgd",
        ),
        ("anisotropic 1x3x3", dm(3, 4, flat, (_sub((1, 3, 3), flat),)), (4, 6, 6), 2, "sgd"),
        (
            "no batch norm, 1x1x1 FC",
            dm(
                4,
                2,
                small,
                (_sub((3, 3, 3), small),),
                (8,),
                batch_norm=False,
                fc_first_kernel=(1, 1, 1),
                dropout=(0.0, 0.0),
            ),
            (4, 4, 4),
            2,
            "sgd",
        ),
        (
            "own sub layers, factor 2",
            dm(1, 3, _path((4, 4, 8, 8, 8), residual=(2, 4)), (_sub((2, 2, 2), _path((4, 8))),)),
            (6, 6, 6),
            1,
            "sgd",
        ),
        ("adam", dm(1, 5, small, (_sub((3, 3, 3), small),)), (3, 3, 3), 3, "adam"),
        (
            "three FC, 1x3x3 first",
            dm(
                2,
                2,
                flat,
                (_sub((1, 2, 2), flat),),
                (8, 8, 8),
                fc_first_kernel=(1, 3, 3),
                dropout=(0.0, 0.2, 0.5, 0.5),
            ),
            (2, 5, 5),
            2,
            "sgd",
        ),
        (
            "residual from input",
            dm(2, 2, _path((4, 4, 4), residual=(1, 2)), (), (8,)),
            (6, 6, 6),
            2,
            "sgd",
        ),
    ]
    return tuple(ValidationCase(n, c, p, b, o) for n, c, p, b, o in cases)
