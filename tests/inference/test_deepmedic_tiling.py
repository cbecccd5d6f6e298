"""DeepMedic tiling: lattice rounding, exact stitching, mirroring, feature maps."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import torch
from torch import nn

from autoseg.errors import ConfigError
from autoseg.inference.deepmedic_tiling import (
    FeatureLayer,
    balanced_tile,
    predict_deepmedic,
    tile_lattice,
    tile_output_shape,
    tile_starts,
    tiled_voxels,
)
from autoseg.networks import (
    DeepMedicConfig,
    PathwayConfig,
    SubsampledPathwayConfig,
    build_network,
)
from autoseg.networks.deepmedic_geometry import segment_shapes

K3 = (3, 3, 3)


def two_factor_config(fc_kernel: tuple[int, int, int] = K3) -> DeepMedicConfig:
    """Factors (3, 3, 3) and (5, 5, 1): lattice (15, 15, 3)."""
    return DeepMedicConfig(
        in_channels=3,
        num_classes=4,
        normal=PathwayConfig(features=(4, 5, 6), kernels=(K3, K3, K3), residual_at=(2,)),
        subsampled=(
            SubsampledPathwayConfig(factor=(3, 3, 3), features=(4, 5), kernels=(K3, K3)),
            SubsampledPathwayConfig(factor=(5, 5, 1), features=(3,), kernels=(K3,)),
        ),
        fc_features=(6,),
        fc_first_kernel=fc_kernel,
        dropout=(0.0, 0.0),
    )


class PositionModel(nn.Module):
    """Outputs, per output voxel, the centre of its normal input (channels 0-2) and the
    upsampled block mean of channel 0 seen by the first subsampled pathway (channel 3)."""

    def __init__(self, config: DeepMedicConfig) -> None:
        super().__init__()
        self.config = config

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        config = self.config
        rf = config.normal.receptive_field()
        out = [n - r + 1 for n, r in zip(inputs[0].shape[2:], rf)]
        h = [(r - 1) // 2 for r in rf]
        normal = inputs[0][:, :, h[0] : h[0] + out[0], h[1] : h[1] + out[1], h[2] : h[2] + out[2]]
        shapes = segment_shapes(config, out)
        sub, m = config.subsampled[0], shapes.subsampled_outputs[0]
        hs = [(r - 1) // 2 for r in sub.receptive_field()]
        blocks = inputs[1][:, :1, hs[0] : hs[0] + m[0], hs[1] : hs[1] + m[1], hs[2] : hs[2] + m[2]]
        for axis, f in enumerate(sub.factor):
            blocks = blocks.repeat_interleave(f, dim=axis + 2)
        off = [(mi * f - n) // 2 for mi, f, n in zip(m, sub.factor, out)]
        blocks = blocks[
            :, :, off[0] : off[0] + out[0], off[1] : off[1] + out[1], off[2] : off[2] + out[2]
        ]
        return torch.cat([normal, blocks], dim=1)


def coordinates(shape: tuple[int, int, int]) -> np.ndarray:
    return np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")).astype(np.float32)


def test_lattice_and_tile_rounding() -> None:
    config = two_factor_config()
    assert tile_lattice(config) == (15, 15, 3)
    assert tile_output_shape(config, (29, 23, 7)) == (30, 30, 6)
    assert tile_output_shape(config, (4, 40, 1)) == (15, 45, 3)
    assert tile_starts((31, 15, 4), (15, 15, 3)) == [(z, 0, x) for z in (0, 15, 30) for x in (0, 3)]


def test_balanced_tiles_cover_the_volume_with_the_least_overshoot() -> None:
    assert balanced_tile((50, 60, 60), (39, 42, 42), (3, 3, 3)) == (27, 30, 30)
    assert balanced_tile((10, 5, 4), (39, 42, 42), (3, 3, 3)) == (12, 6, 6)
    assert balanced_tile((90, 45, 46), (45, 45, 45), (15, 15, 1)) == (45, 45, 23)
    rng = np.random.default_rng(0)
    for _ in range(200):
        lattice = tuple(int(v) for v in rng.integers(1, 6, size=3))
        tile = tuple(int(lat * rng.integers(1, 10)) for lat in lattice)
        volume = tuple(int(v) for v in rng.integers(1, 120, size=3))
        balanced = balanced_tile(volume, tile, lattice)
        for n, t, b, lat in zip(volume, tile, balanced, lattice):
            assert b % lat == 0 and lat <= b <= t
            assert -(-n // b) == -(-n // t)  # as many tiles as the planned size needs
            assert b - lat < -(-n // -(-n // t))  # and no lattice step more than needed


def test_tiled_voxels_count_non_overlapping_tiles() -> None:
    # ceil(20 / 9) = 3 tiles along Z, one along Y and X
    assert tiled_voxels((20, 9, 9), (9, 9, 9)) == 3 * 9 * 9 * 9
    assert tiled_voxels((20, 9, 10), (9, 9, 9)) == len(tile_starts((20, 9, 10), (9, 9, 9))) * 729


@pytest.mark.parametrize("tile", [(15, 15, 3), (30, 15, 6), (45, 45, 21)])
def test_position_model_is_stitched_exactly(tile: tuple[int, int, int]) -> None:
    config = two_factor_config()
    shape = (37, 31, 20)
    logits, _ = predict_deepmedic(
        PositionModel(config), coordinates(shape), config, tile, batch_size=2
    )
    out = logits.numpy()
    np.testing.assert_array_equal(out[:3], coordinates(shape))
    # The subsampled channel lies on one global block grid whatever the tiling: away from
    # the zero-padded borders each value is the mean z of the 3 slices of its block, and the
    # blocks are [2, 3, 4], [5, 6, 7], ... (the FC margin of 1 voxel shifts them by one).
    z = np.arange(2, shape[0] - 4)
    np.testing.assert_allclose(out[3, 2:-4, 5, 5], np.floor((z + 1) / 3) * 3, atol=1e-5)


def test_real_network_tiling_does_not_depend_on_the_tile_size() -> None:
    config = two_factor_config()
    torch.manual_seed(0)
    network = build_network(config).eval()
    image = np.random.default_rng(0).normal(size=(3, 23, 19, 8)).astype(np.float32)
    small, _ = predict_deepmedic(network, image, config, (15, 15, 3), batch_size=3)
    whole, _ = predict_deepmedic(network, image, config, (30, 30, 9))
    torch.testing.assert_close(small, whole, rtol=1e-4, atol=1e-5)
    assert small.shape == (4, 23, 19, 8)
    assert small.std() > 1e-3  # a non-trivial output, so equality means something


def test_mirroring_averages_whole_volume_flips() -> None:
    config = two_factor_config(fc_kernel=(1, 1, 1))
    torch.manual_seed(1)
    network = build_network(config).eval()
    image = np.random.default_rng(1).normal(size=(3, 16, 15, 6)).astype(np.float32)
    tile = (15, 15, 3)
    plain, _ = predict_deepmedic(network, image, config, tile)
    flipped, _ = predict_deepmedic(network, np.ascontiguousarray(image[:, :, ::-1]), config, tile)
    mirrored, _ = predict_deepmedic(network, image, config, tile, mirror_axes=(1,))
    expected = (plain + torch.flip(flipped, [2])) / 2
    torch.testing.assert_close(mirrored, expected)
    assert not torch.allclose(mirrored, plain, atol=1e-4)
    # An equivariant (position) model is unchanged by mirroring.
    position, _ = predict_deepmedic(PositionModel(config), coordinates((16, 15, 6)), config, tile)
    both, _ = predict_deepmedic(
        PositionModel(config), coordinates((16, 15, 6)), config, tile, mirror_axes=(0, 1, 2)
    )
    torch.testing.assert_close(both[:3], position[:3])


def test_feature_maps_are_on_the_output_grid_and_tiling_independent() -> None:
    config = two_factor_config()
    torch.manual_seed(2)
    network = build_network(config).eval()
    image = np.random.default_rng(2).normal(size=(3, 17, 16, 5)).astype(np.float32)
    layers = [FeatureLayer("normal", 1), FeatureLayer("subsampled_2", 0), FeatureLayer("fc", 0)]
    _, small = predict_deepmedic(network, image, config, (15, 15, 3), feature_layers=layers)
    _, whole = predict_deepmedic(network, image, config, (30, 30, 6), feature_layers=layers)
    assert small[layers[0]].shape == (5, 17, 16, 5)
    assert small[layers[1]].shape == (3, 17, 16, 5)
    assert small[layers[2]].shape == (6, 17, 16, 5)
    for layer in layers:
        np.testing.assert_allclose(small[layer], whole[layer], rtol=1e-4, atol=1e-5)
    # The subsampled pathway (factor 5, 5, 1) repeats each voxel over 5 rows along Y and Z:
    # 16 rows hold at most 5 distinct ones (4 blocks, plus one where the grid is cut).
    sub = small[layers[1]]
    assert np.abs(sub).max() > 0
    assert len(np.unique(sub[0, 3], axis=0)) <= 5
    assert len(np.unique(sub[0, :, 3], axis=0)) <= 5


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        (FeatureLayer("normal", 3), "layers 0..2"),
        (FeatureLayer("subsampled_3", 0), "choose from normal, subsampled_1, subsampled_2, fc"),
        (FeatureLayer("fc", 1), "layers 0..0"),
    ],
)
def test_unknown_feature_layers_are_rejected(layer: FeatureLayer, message: str) -> None:
    config = two_factor_config()
    network = build_network(config).eval()
    image = np.zeros((3, 4, 4, 4), dtype=np.float32)
    with pytest.raises(ConfigError, match=message):
        predict_deepmedic(network, image, config, (15, 15, 3), feature_layers=[layer])


def test_tile_shape_must_lie_on_the_lattice() -> None:
    config = two_factor_config()
    with pytest.raises(ConfigError, match="multiples of the lattice"):
        predict_deepmedic(
            PositionModel(config), np.zeros((3, 4, 4, 4), np.float32), config, (10, 15, 3)
        )
