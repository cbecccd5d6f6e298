"""The 2D U-Net: a real 2D network (Conv2d) on slices of B×C×Z×Y×X volumes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from autoseg.errors import ConfigError
from autoseg.networks import UNetConfig, build_network, network_config_from_dict


def _config(axis: int = 0, **overrides: object) -> UNetConfig:
    values: dict[str, object] = {
        "kind": "unet2d",
        "slice_axis": axis,
        "in_channels": 2,
        "num_classes": 3,
        "features_per_stage": (4, 8, 16),
        "kernel_sizes": ((3, 3), (3, 3), (3, 3)),
        "strides": ((1, 1), (2, 2), (2, 2)),
        **overrides,
    }
    return UNetConfig(**values)  # type: ignore[arg-type]


def test_the_2d_unet_is_built_from_2d_layers_only() -> None:
    network = build_network(_config())
    kinds = {type(m) for m in network.modules()}
    assert nn.Conv2d in kinds and nn.ConvTranspose2d in kinds and nn.InstanceNorm2d in kinds
    assert not kinds & {nn.Conv3d, nn.ConvTranspose3d, nn.InstanceNorm3d}


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_slices_are_segmented_independently_across_any_axis(axis: int) -> None:
    torch.manual_seed(0)
    config = _config(axis)
    network = build_network(config).eval()
    shape = [16, 16, 16]
    shape[axis] = 3
    x = torch.randn(2, 2, *shape)
    out = network(x)
    assert out.shape == (2, 3, *shape)
    one = x.narrow(2 + axis, 1, 1)
    assert torch.allclose(network(one), out.narrow(2 + axis, 1, 1), atol=1e-5)
    assert config.patch_divisor()[axis] == 1 and max(config.patch_divisor()) == 4


def test_deep_supervision_outputs_are_downsampled_in_plane_only() -> None:
    network = build_network(_config(0)).train()
    outputs = network(torch.randn(4, 2, 1, 16, 32))
    assert [tuple(o.shape) for o in outputs] == [(4, 3, 1, 16, 32), (4, 3, 1, 8, 16)]
    assert _config(0).deep_supervision_scales() == ((1.0, 1.0, 1.0), (1.0, 0.5, 0.5))


def test_round_trip_and_strict_parsing() -> None:
    config = _config(2)
    data = config.to_dict()
    assert data["kind"] == "unet2d" and data["slice_axis"] == 2
    assert data["kernel_sizes"] == [[3, 3]] * 3
    assert network_config_from_dict(data) == config
    assert (
        "slice_axis"
        not in UNetConfig(
            in_channels=1,
            num_classes=2,
            features_per_stage=(4, 8),
            kernel_sizes=((3, 3, 3),) * 2,
            strides=((1, 1, 1), (2, 2, 2)),
        ).to_dict()
    )
    with pytest.raises(ConfigError, match="missing keys"):
        network_config_from_dict({k: v for k, v in data.items() if k != "slice_axis"})
    with pytest.raises(ConfigError, match=r"needs 2 values \(the slice plane\)"):
        _config(kernel_sizes=((3, 3, 3),) * 3)
    with pytest.raises(ConfigError, match="slice_axis` must be 0, 1 or 2"):
        _config(3)
    with pytest.raises(ConfigError, match="for 'unet2d' only"):
        UNetConfig(
            slice_axis=0,
            in_channels=1,
            num_classes=2,
            features_per_stage=(4, 8),
            kernel_sizes=((3, 3, 3),) * 2,
            strides=((1, 1, 1), (2, 2, 2)),
        )
