"""Tests for window placement, the Gaussian map, padding and sliding-window stitching."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from autoseg.errors import ConfigError
from autoseg.inference.sliding_window import (
    compute_window_starts,
    gaussian_importance_map,
    pad_to_patch,
    sliding_window_inference,
    sliding_window_voxels,
    windows_along,
)


def _random_layouts(count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        patch = tuple(int(v) for v in rng.integers(1, 12, size=3))
        shape = tuple(p + int(e) for p, e in zip(patch, rng.integers(0, 30, size=3)))
        yield shape, patch, float(rng.choice([0.1, 0.25, 1 / 3, 0.5, 0.7, 1.0]))


LAYOUTS = [
    ((4, 4, 4), (4, 4, 4), 0.5),
    ((5, 4, 9), (4, 4, 4), 0.5),
    ((128, 97, 33), (64, 48, 32), 0.5),
    ((10, 10, 10), (3, 3, 3), 1.0),
    ((7, 9, 11), (1, 2, 3), 0.5),
    *_random_layouts(40),
]


@pytest.mark.parametrize(("shape", "patch", "step"), LAYOUTS)
def test_windows_cover_every_voxel_with_bounded_even_steps(shape, patch, step):
    starts = compute_window_starts(shape, patch, step)
    covered = np.zeros(shape, dtype=np.int32)
    for z, y, x in starts:
        assert all(0 <= s <= n - p for s, n, p in zip((z, y, x), shape, patch))
        covered[z : z + patch[0], y : y + patch[1], x : x + patch[2]] += 1
    assert covered.min() >= 1
    assert len(set(starts)) == len(starts)
    for axis in range(3):
        axis_starts = sorted({s[axis] for s in starts})
        assert axis_starts[0] == 0 and axis_starts[-1] == shape[axis] - patch[axis]
        steps = np.diff(axis_starts)
        max_step = max(1, int(patch[axis] * step + 1e-9))
        assert (steps >= 1).all() and (steps <= max_step).all()
        if len(steps):
            assert steps.max() - steps.min() <= 1  # evenly spread
            # The fewest windows that respect the step bound.
            span = shape[axis] - patch[axis]
            assert len(axis_starts) == -(-span // max_step) + 1
    # Z varies slowest, X fastest: one window per grid point in row-major order.
    assert starts == sorted(starts)


@pytest.mark.parametrize(("shape", "patch", "step"), LAYOUTS)
def test_window_counts_are_the_windows_the_sliding_window_uses(shape, patch, step):
    starts = compute_window_starts(shape, patch, step)
    per_axis = [windows_along(n, p, step) for n, p in zip(shape, patch)]
    assert per_axis == [len({s[axis] for s in starts}) for axis in range(3)]
    assert sliding_window_voxels(shape, patch, step) == len(starts) * int(np.prod(patch))


def test_window_voxels_pad_short_axes_to_the_patch():
    # 64 voxels, window 32, step 16 -> 3 windows; 20 < 32 is padded to one window
    assert sliding_window_voxels((64, 20, 32), (32, 32, 32), 0.5) == 3 * 32 * 32 * 32
    assert sliding_window_voxels((64, 32, 32), (32, 32, 32), 0.5) == 3 * 32 * 32 * 32
    with pytest.raises(ConfigError, match="step size"):
        sliding_window_voxels((64, 32, 32), (32, 32, 32), 0.0)


def test_window_start_errors():
    with pytest.raises(ValueError, match="smaller than patch"):
        compute_window_starts((3, 8, 8), (4, 4, 4))
    for bad_step in (0.0, -0.5, 1.5):
        with pytest.raises(ConfigError, match="step"):
            compute_window_starts((8, 8, 8), (4, 4, 4), bad_step)
    with pytest.raises(ConfigError, match="patch size"):
        compute_window_starts((8, 8, 8), (4, 0, 4))


@pytest.mark.parametrize("patch", [(8, 8, 8), (5, 12, 7), (1, 16, 16)])
def test_gaussian_is_normalised_positive_symmetric_and_peaked(patch):
    gauss = gaussian_importance_map(patch)
    assert gauss.shape == patch and gauss.dtype == torch.float32
    assert float(gauss.max()) == pytest.approx(1.0)
    assert float(gauss.min()) > 0
    torch.testing.assert_close(gauss, gauss.flip(0, 1, 2))
    centre = tuple(p // 2 for p in patch)
    assert float(gauss[centre]) == float(gauss.max())
    middle_row = gauss[centre[0], centre[1], : centre[2] + 1]
    assert (middle_row.diff() >= 0).all()  # rises towards the centre


def test_gaussian_is_cached_and_keeps_underflowing_corners_positive():
    assert gaussian_importance_map((8, 8, 8)) is gaussian_importance_map([8, 8, 8])
    assert gaussian_importance_map((8, 8, 8)) is not gaussian_importance_map((8, 8, 8), 0.25)
    half = gaussian_importance_map((128, 128, 128), dtype=torch.float16)
    unclamped = np.exp(-0.5 * 3 * (63.5 / 16) ** 2)  # corner value in exact arithmetic
    assert np.float16(unclamped) == 0  # it would underflow in float16 ...
    assert float(half.min()) > 0  # ... but is raised to the smallest positive value
    with pytest.raises(ConfigError, match="sigma"):
        gaussian_importance_map((8, 8, 8), sigma_scale=0.0)


def test_pad_to_patch_pads_short_axes_and_slicer_undoes_it():
    image = torch.arange(2 * 3 * 10 * 5, dtype=torch.float32).reshape(2, 3, 10, 5)
    padded, slicer = pad_to_patch(image, (8, 4, 6), value=-1.0)
    assert padded.shape == (2, 8, 10, 6)
    torch.testing.assert_close(padded[slicer], image)
    assert float((padded == -1).sum()) == padded.numel() - image.numel()
    # The padding is split around the image: 5 voxels before/after along Z = 2 + 3.
    assert slicer[1] == slice(2, 5)
    same, slicer = pad_to_patch(image, (3, 10, 5))
    assert same is image and same[slicer].shape == image.shape


def _coordinates(shape):
    """Three channels holding the global z, y and x index of each voxel."""
    grids = torch.meshgrid(*[torch.arange(n, dtype=torch.float32) for n in shape], indexing="ij")
    return torch.stack(grids)


def position_function(c: torch.Tensor) -> torch.Tensor:
    """A pointwise 'model': 4 outputs that are known functions of the voxel coordinates."""
    z, y, x = c[:, 0], c[:, 1], c[:, 2]
    return torch.stack([z, y, x, 0.5 * z - 2.0 * y + 0.25 * x * x], dim=1)


@pytest.mark.parametrize(
    ("batch_size", "use_gaussian", "mirror"),
    [*itertools.product([1, 3], [True, False], [False]), (3, True, True)],
)
def test_known_function_of_position_is_reproduced_exactly(batch_size, use_gaussian, mirror):
    shape = (23, 17, 30)
    image = _coordinates(shape)
    got = sliding_window_inference(
        position_function,
        image,
        (8, 10, 12),
        4,
        batch_size=batch_size,
        use_gaussian=use_gaussian,
        mirror_axes=(0, 1, 2) if mirror else None,
    )
    assert got.shape == (4, *shape) and got.dtype == torch.float32
    expected = position_function(image[None])[0]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)


def test_image_smaller_than_patch_is_padded_and_cropped_back():
    shape = (5, 20, 7)
    image = _coordinates(shape)
    got = sliding_window_inference(position_function, image, (8, 8, 8), 4, batch_size=2)
    assert got.shape == (4, *shape)
    torch.testing.assert_close(got, position_function(image[None])[0], rtol=1e-5, atol=1e-4)


def _numpy_gaussian(patch, sigma_scale=1 / 8):
    axes = [np.exp(-0.5 * ((np.arange(p) - (p - 1) / 2) / (p * sigma_scale)) ** 2) for p in patch]
    gauss = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    return gauss / gauss.max()


@pytest.mark.parametrize("use_gaussian", [True, False])
def test_overlapping_windows_are_averaged_with_the_importance_weights(use_gaussian):
    """Each window predicts one constant (its mean intensity); check the weighted blend."""
    shape, patch = (12, 9, 14), (6, 6, 8)
    image = torch.rand(1, *shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)

    def window_mean(batch):
        return batch.float().mean(dim=(1, 2, 3, 4), keepdim=True).expand(-1, 2, *patch) * 1.0

    got = sliding_window_inference(
        window_mean, image, patch, 2, batch_size=2, use_gaussian=use_gaussian
    )
    weights = _numpy_gaussian(patch) if use_gaussian else np.ones(patch)
    sums, norm = np.zeros(shape), np.zeros(shape)
    for z, y, x in compute_window_starts(shape, patch):
        sl = (slice(z, z + patch[0]), slice(y, y + patch[1]), slice(x, x + patch[2]))
        sums[sl] += weights * float(image[(0, *sl)].mean())
        norm[sl] += weights
    expected = torch.from_numpy(sums / norm).float()
    torch.testing.assert_close(got[0], expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got[1], expected, rtol=1e-4, atol=1e-5)
    # The blend is not flat: windows disagree, so the weighting is visible.
    assert float(expected.max() - expected.min()) > 1e-3


def test_tta_in_sliding_window_matches_mean_over_flips_for_one_window():
    torch.manual_seed(0)
    model = torch.nn.Conv3d(1, 2, 3, padding=1).eval()
    image = torch.randn(1, 6, 5, 4)
    got = sliding_window_inference(model, image, (6, 5, 4), 2, mirror_axes=(0, 1, 2))
    with torch.no_grad():
        flips = [d for r in range(4) for d in itertools.combinations((1, 2, 3), r)]
        expected = sum(model(image.flip(d)).flip(d) if d else model(image) for d in flips) / 8
        plain = model(image)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(got, plain, atol=1e-3)


def test_result_is_a_normal_float32_tensor_and_amp_is_ignored_on_cpu():
    image = _coordinates((6, 6, 6))
    got = sliding_window_inference(position_function, image, (4, 4, 4), 4, amp=True)
    assert got.dtype == torch.float32 and got.device == torch.device("cpu")
    assert not got.is_inference()
    got.add_(1.0)  # callers may post-process in place
    # No bfloat16 autocast on CPU: the result is as exact as without amp.
    expected = position_function(image[None])[0] + 1.0
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)


def test_wrong_output_shape_and_bad_arguments_raise():
    image = torch.zeros(1, 8, 8, 8)
    with pytest.raises(ValueError, match="expected"):
        sliding_window_inference(lambda b: b, image, (4, 4, 4), 3)
    with pytest.raises(ValueError, match="eval mode"):
        sliding_window_inference(lambda b: [b, b], image, (4, 4, 4), 1)
    with pytest.raises(ValueError, match="C×Z×Y×X"):
        sliding_window_inference(lambda b: b, image[0], (4, 4, 4), 1)
    with pytest.raises(ConfigError, match="batch size"):
        sliding_window_inference(lambda b: b, image, (4, 4, 4), 1, batch_size=0)
    with pytest.raises(ValueError, match="mirror axes"):
        sliding_window_inference(lambda b: b, image, (4, 4, 4), 1, mirror_axes=(3,))
