"""DeepMedic: segment geometry, voxel-exact alignment of pathways, shapes, gradient flow."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from autoseg.diagnostics.memory_measure import make_training_batch, reference_loss
from autoseg.errors import InputError
from autoseg.networks import (
    DeepMedicConfig,
    PathwayConfig,
    SubsampledPathwayConfig,
    build_network,
)
from autoseg.networks.deepmedic import (
    DeepMedic,
    extract_pathway_inputs,
    input_boxes,
    receptive_field,
    segment_shapes,
)

ODD = (1, 3)


def random_deepmedic(seed: int) -> tuple[DeepMedicConfig, tuple[int, int, int], int]:
    """A random valid DeepMedic config, an output shape and a batch size."""
    rng = random.Random(seed)

    def layers() -> dict[str, object]:
        n = rng.randint(2, 4)
        feats = tuple(sorted(rng.randint(2, 6) for _ in range(n)))  # non-decreasing
        kernels = tuple(tuple(rng.choice(ODD) for _ in range(3)) for _ in range(n))
        residual = tuple(i for i in range(2, n) if rng.random() < 0.5)
        return {"features": feats, "kernels": kernels, "residual_at": residual}

    subs = tuple(
        SubsampledPathwayConfig(factor=tuple(rng.randint(1, 3) for _ in range(3)), **layers())
        for _ in range(rng.randint(0, 2))
    )
    fc = tuple(rng.randint(3, 8) for _ in range(rng.randint(0, 2)))
    config = DeepMedicConfig(
        in_channels=rng.randint(1, 3),
        num_classes=rng.randint(2, 4),
        normal=PathwayConfig(**layers()),  # type: ignore[arg-type]
        subsampled=subs,
        fc_features=fc,
        fc_first_kernel=tuple(rng.choice(ODD) for _ in range(3)),
        dropout=tuple(rng.choice((0.0, 0.3)) for _ in range(len(fc) + 1)),
        batch_norm=rng.random() < 0.7,
    )
    output = tuple(rng.randint(1, 5) for _ in range(3))
    return config, output, rng.randint(1, 3)  # type: ignore[return-value]


def test_segment_shapes_of_the_paper_network() -> None:
    config = DeepMedicConfig.default(1, 2)
    assert receptive_field(config) == {
        "normal": (17, 17, 17),
        "subsampled_1": (51, 51, 51),
        "subsampled_2": (85, 85, 85),
    }
    shapes = segment_shapes(config, (9, 9, 9))
    assert shapes.normal == (25, 25, 25)
    assert shapes.subsampled == ((19, 19, 19), (18, 18, 18))  # ceil(9/3)+16, ceil(9/5)+16
    assert shapes.subsampled_outputs == ((3, 3, 3), (2, 2, 2))
    assert shapes.inputs == ((25, 25, 25), (19, 19, 19), (18, 18, 18))


def test_anisotropic_geometry() -> None:
    config = DeepMedicConfig.default(1, 2, factors=((1, 3, 3),), kernel=(1, 3, 3))
    assert receptive_field(config) == {"normal": (1, 17, 17), "subsampled_1": (1, 51, 51)}
    shapes = segment_shapes(config, (4, 9, 10))
    assert shapes.normal == (4, 25, 26)
    assert shapes.subsampled == ((4, 19, 20),)
    inputs = extract_pathway_inputs(
        np.zeros((1, 8, 60, 60), np.float32), (0, 5, 5), (4, 9, 10), config
    )
    assert [x.shape[1:] for x in inputs] == list(shapes.inputs)


@pytest.mark.parametrize("bad", [(0, 3, 3), (3, 3), (2, -1, 4), (2.5, 3, 3)])
def test_segment_shapes_rejects_bad_output(bad: tuple[int, ...]) -> None:
    with pytest.raises(InputError, match="output shape must be 3 integers >= 1"):
        segment_shapes(DeepMedicConfig.default(1, 2), bad)


@pytest.mark.parametrize("seed", range(12))
def test_shapes_in_train_and_eval_mode(seed: int) -> None:
    config, output, batch = random_deepmedic(seed)
    torch.manual_seed(seed)
    net = build_network(config)
    assert isinstance(net, DeepMedic)
    shapes = segment_shapes(config, output)
    volume = np.random.default_rng(seed).normal(size=(config.in_channels, 12, 13, 14))
    cut = extract_pathway_inputs(volume.astype(np.float32), (3, -2, 9), output, config)
    assert [c.shape for c in cut] == [(config.in_channels, *s) for s in shapes.inputs]
    inputs = [torch.from_numpy(np.stack([c] * batch)) for c in cut]
    assert tuple(net.train()(inputs).shape) == (batch, config.num_classes, *output)
    with torch.no_grad():
        assert tuple(net.eval()(inputs).shape) == (batch, config.num_classes, *output)


def _coordinate_network(
    factors: tuple[tuple[int, int, int], ...], kernels: tuple[tuple[int, int, int], ...]
) -> DeepMedic:
    """Pathways whose layers copy the centre voxel: features = input at the field's centre."""
    path = {"features": (3,) * len(kernels), "kernels": kernels, "residual_at": ()}
    config = DeepMedicConfig(
        in_channels=3,
        num_classes=2,
        normal=PathwayConfig(**path),  # type: ignore[arg-type]
        subsampled=tuple(SubsampledPathwayConfig(factor=f, **path) for f in factors),  # type: ignore[arg-type]
        fc_features=(),
        dropout=(0.0,),
        batch_norm=False,
    )
    net = DeepMedic(config).eval()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.Conv3d) and module.out_channels == 3:
                k = module.kernel_size
                module.weight.zero_()
                for c in range(3):
                    module.weight[c, c, k[0] // 2, k[1] // 2, k[2] // 2] = 1.0
                module.bias.zero_()  # type: ignore[union-attr]
            if isinstance(module, torch.nn.PReLU):
                module.weight.fill_(1.0)  # identity
    return net


@pytest.mark.parametrize(
    ("factors", "kernels", "output"),
    [
        (((3, 3, 3), (5, 5, 5)), ((3, 3, 3),) * 4, (9, 9, 9)),
        (((1, 3, 3),), ((1, 3, 3), (3, 3, 3), (1, 3, 3)), (3, 9, 15)),
        (((2, 2, 2), (3, 1, 5)), ((3, 1, 3), (3, 3, 3)), (4, 5, 6)),
    ],
)
def test_pathways_align_voxel_exactly(factors, kernels, output) -> None:  # type: ignore[no-untyped-def]
    """A volume holding its own (z, y, x) coordinates: every output voxel must see itself.

    The normal pathway must return the voxel's coordinates exactly; a subsampled pathway the
    mean coordinates of the f-block containing the voxel, i.e. within (f - 1) / 2 of it,
    constant over each block, and exactly the voxel itself at the centre when n / f and f are odd.
    """
    net = _coordinate_network(factors, kernels)
    grid = np.stack(np.meshgrid(*(np.arange(90.0),) * 3, indexing="ij")).astype(np.float32)
    start = (40, 38, 37)
    inputs = extract_pathway_inputs(grid, start, output, net.config)
    with torch.no_grad():
        features = net.pathway_features([torch.from_numpy(x)[None] for x in inputs])[0].numpy()
    truth = grid[(slice(None), *(slice(s, s + n) for s, n in zip(start, output)))]
    np.testing.assert_array_equal(features[:3], truth)
    for i, factor in enumerate(factors):
        sub = features[3 * (i + 1) : 3 * (i + 2)]
        half = np.asarray(factor, dtype=np.float32)[:, None, None, None]
        assert np.all(np.abs(sub - truth) <= (half - 1) / 2 + 1e-4)
        for axis in range(3):  # a new block starts every `factor` voxels along each axis
            steps = np.diff(sub[axis], axis=axis)
            assert set(np.unique(steps).round(4)) <= {0.0, float(factor[axis])}
        centre = tuple(n // 2 for n in output)
        for axis in range(3):
            n, f = output[axis], factor[axis]
            if n % f == 0 and (n // f) % 2 == 1 and f % 2 == 1:  # n odd: a true centre voxel
                assert sub[(axis, *centre)] == truth[(axis, *centre)]


def test_tiles_reproduce_the_whole_output_exactly() -> None:
    """Alignment holds across positions: two adjacent output boxes equal one big box."""
    path = PathwayConfig(
        features=(4, 6, 6), kernels=((3, 3, 3), (1, 3, 3), (3, 3, 3)), residual_at=(2,)
    )
    config = DeepMedicConfig(
        in_channels=2,
        num_classes=3,
        normal=path,
        subsampled=(
            SubsampledPathwayConfig(factor=(3, 3, 3), features=(4, 6), kernels=((3, 3, 3),) * 2),
            SubsampledPathwayConfig(factor=(1, 3, 3), features=(4, 6), kernels=((1, 3, 3),) * 2),
        ),
        fc_features=(8,),
        fc_first_kernel=(1, 1, 1),
        dropout=(0.0, 0.0),
    )
    torch.manual_seed(0)
    net = DeepMedic(config).eval()
    volume = np.random.default_rng(0).normal(size=(2, 30, 30, 30)).astype(np.float32)

    def run(start: tuple[int, int, int], shape: tuple[int, int, int]) -> np.ndarray:
        inputs = extract_pathway_inputs(volume, start, shape, config, pad_value=-1.0)
        with torch.no_grad():
            return net([torch.from_numpy(x)[None] for x in inputs])[0].numpy()

    whole = run((-2, 4, 5), (6, 6, 9))
    left, right = run((-2, 4, 5), (6, 6, 3)), run((-2, 4, 8), (6, 6, 6))
    np.testing.assert_allclose(np.concatenate([left, right], axis=3), whole, atol=1e-5)


def test_extract_pads_outside_the_volume() -> None:
    config = DeepMedicConfig(
        in_channels=1,
        num_classes=2,
        normal=PathwayConfig(features=(2,), kernels=((3, 3, 3),)),
        subsampled=(
            SubsampledPathwayConfig(factor=(2, 2, 2), features=(2,), kernels=((1, 1, 1),)),
        ),
        fc_features=(),
        dropout=(0.0,),
    )
    volume = np.arange(4 * 4 * 4, dtype=np.float32).reshape(1, 4, 4, 4)
    normal, sub = extract_pathway_inputs(volume, (0, 0, 0), (2, 2, 2), config, pad_value=-7.0)
    assert normal.shape == (1, 4, 4, 4)
    assert np.all(normal[0, 0] == -7.0) and np.all(normal[0, :, 0] == -7.0)
    np.testing.assert_array_equal(normal[0, 1:, 1:, 1:], volume[0, :3, :3, :3])
    (zs, ys, xs), shape = input_boxes(config, (0, 0, 0), (2, 2, 2))[1]
    assert ((zs, ys, xs), shape) == ((0, 0, 0), (2, 2, 2))
    assert sub[0, 0, 0, 0] == volume[0, :2, :2, :2].mean()
    far = extract_pathway_inputs(volume, (50, 50, 50), (2, 2, 2), config, pad_value=3.0)
    assert all(np.all(x == 3.0) for x in far)
    with pytest.raises(InputError, match="C×Z×Y×X"):
        extract_pathway_inputs(volume[0], (0, 0, 0), (2, 2, 2), config)


@pytest.mark.parametrize("seed", [2, 5, 11])
def test_gradient_reaches_every_pathway(seed: int) -> None:
    config, output, batch = random_deepmedic(seed)
    config = DeepMedicConfig.from_dict(
        {
            **config.to_dict(),
            "subsampled": [
                {
                    "factor": [3, 1, 2],
                    "features": [3, 4],
                    "kernels": [[3, 3, 3], [1, 3, 3]],
                    "residual_at": [1],
                },
                {"factor": [2, 2, 2], "features": [4], "kernels": [[3, 3, 3]], "residual_at": []},
            ],
            "dropout": [0.0] * (len(config.fc_features) + 1),
        }
    )
    torch.manual_seed(seed)
    net = build_network(config).train()
    inputs, targets = make_training_batch(config, output, max(batch, 2))
    reference_loss([net(inputs)], targets).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    assert any(n.startswith("subsampled.1.") for n, _ in net.named_parameters())


def test_rejects_mismatched_pathway_inputs() -> None:
    config = DeepMedicConfig.default(1, 2, factors=((3, 3, 3),))
    net = build_network(config)
    shapes = segment_shapes(config, (3, 3, 3))
    good = [torch.zeros(1, 1, *s) for s in shapes.inputs]
    with pytest.raises(ValueError, match="expects 2 pathway inputs"):
        net(good[:1])
    with pytest.raises(ValueError, match="see segment_shapes"):
        net([good[0], torch.zeros(1, 1, 20, 19, 19)])
    with pytest.raises(ValueError, match="at least the receptive field"):
        net([torch.zeros(1, 1, 9, 9, 9), good[1]])
