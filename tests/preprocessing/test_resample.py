"""Tests for autoseg.preprocessing.resample (and its anisotropy rule and kernels)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from autoseg.preprocessing.interpolation import resample_separable, resample_trilinear
from autoseg.preprocessing.resample import (
    axis_orders,
    compute_new_shape,
    is_anisotropic,
    lowres_axis,
    resample_image,
    resample_label,
    resample_probabilities,
    resample_probabilities_to_labels,
    separate_axis,
)


def _smooth_image(shape: tuple[int, int, int]) -> np.ndarray:
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    return np.exp(-2.0 * (z**2 + (y - 0.2) ** 2 + x**2))[None].astype(np.float32)


def _blob_labels(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), 2.0)
    label = np.zeros(shape, dtype=np.uint8)
    label[noise > 0.05] = 2
    label[noise > 0.15] = 5
    return label


@pytest.mark.parametrize(
    ("shape", "spacing", "target", "expected"),
    [
        ((10, 64, 64), (5.0, 0.7, 0.7), (5.0, 1.4, 1.4), (10, 32, 32)),
        ((3, 5, 7), (1.0, 1.0, 1.0), (0.5, 2.0, 1.0), (6, 3, 7)),  # 2.5 rounds half up
        ((1, 4, 4), (1.0, 1.0, 1.0), (10.0, 1.0, 1.0), (1, 4, 4)),  # never below 1
        ((100, 100, 100), (0.8, 0.8, 0.8), (1.0, 1.0, 1.0), (80, 80, 80)),
    ],
)
def test_compute_new_shape(shape, spacing, target, expected) -> None:  # type: ignore[no-untyped-def]
    result = compute_new_shape(shape, spacing, target)
    assert result == expected
    assert all(type(v) is int for v in result)


@pytest.mark.parametrize("bad", [(1.0, 0.0, 1.0), (1.0, -1.0, 1.0), (1.0, 1.0), (np.nan, 1, 1)])
def test_bad_spacing_raises(bad) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="spacing"):
        compute_new_shape((4, 4, 4), bad, (1.0, 1.0, 1.0))


@pytest.mark.parametrize(
    ("spacing", "target", "threshold", "axis"),
    [
        ((5.0, 0.7, 0.7), (5.0, 0.7, 0.7), 3.0, 0),  # thick slices along Z
        ((0.7, 0.7, 5.0), (1.0, 1.0, 1.0), 3.0, 2),  # the current spacing decides first
        ((1.0, 1.0, 1.0), (1.0, 4.0, 1.0), 3.0, 1),  # an anisotropic target decides next
        ((5.0, 0.7, 0.7), (5.0, 0.7, 0.7), 10.0, None),  # below the caller's threshold
        ((0.24, 1.25, 1.25), (0.24, 1.25, 1.25), 3.0, None),  # two coarse axes: plain 3-D
        ((1.0, 1.0, 1.0), (1.0, 1.0, 1.0), 3.0, None),
    ],
)
def test_separate_axis_rule(spacing, target, threshold, axis) -> None:  # type: ignore[no-untyped-def]
    assert separate_axis(spacing, target, threshold) == axis
    orders = axis_orders(spacing, target, 3, 0, threshold)
    assert orders == tuple(0 if a == axis else 3 for a in range(3))


def test_anisotropy_helpers() -> None:
    assert is_anisotropic((3.1, 1.0, 1.0), 3.0) and not is_anisotropic((3.0, 1.0, 1.0), 3.0)
    assert lowres_axis((1.0, 2.0, 0.5)) == 1
    assert lowres_axis((2.0, 2.0, 0.5)) is None


@pytest.mark.parametrize("order", [0, 1, 3])
def test_kernels_match_scipy_zoom_grid_mode(order: int) -> None:
    """The stated convention: scipy zoom with grid_mode=True (nearest edges, mirror for splines)."""
    rng = np.random.default_rng(3)
    volume = rng.standard_normal((6, 9, 11))
    new_shape = (13, 5, 11)
    mode = "nearest" if order <= 1 else "mirror"
    zoom = [n / o for n, o in zip(new_shape, volume.shape)]
    expected = ndimage.zoom(volume, zoom, order=order, mode=mode, grid_mode=True)
    result = resample_separable(volume.astype(np.float32), new_shape, (order,) * 3)
    np.testing.assert_allclose(result, expected, atol=2e-6)


def test_torch_trilinear_matches_separable_kernels() -> None:
    volume = np.random.default_rng(8).standard_normal((2, 3, 5, 6, 7)).astype(np.float32)
    volume.flags.writeable = False  # e.g. a read-only memory map
    result = resample_trilinear(volume, (9, 4, 10))
    assert result.shape == (2, 3, 9, 4, 10) and result.dtype == np.float32
    np.testing.assert_allclose(result, resample_separable(volume, (9, 4, 10), (1, 1, 1)), atol=1e-5)


def test_same_shape_returns_float32_copy() -> None:
    image = np.arange(24, dtype=np.int16).reshape(1, 2, 3, 4)
    out = resample_image(image, (1.0, 2.0, 3.0), (1.0, 2.0, 3.0))
    assert out.dtype == np.float32 and not np.shares_memory(out, image)
    np.testing.assert_array_equal(out, image)


@pytest.mark.parametrize("target", [(0.6, 1.3, 0.8), (1.5, 0.7, 1.2)])
def test_image_round_trip_restores_shape_and_values(target: tuple[float, float, float]) -> None:
    image = _smooth_image((20, 24, 28))
    there = resample_image(image, (1.0, 1.0, 1.0), target)
    assert there.shape == (1, *compute_new_shape((20, 24, 28), (1.0, 1.0, 1.0), target))
    back = resample_image(there, target, None, new_shape=(20, 24, 28))
    assert back.shape == image.shape and back.dtype == np.float32
    np.testing.assert_allclose(back, image, atol=0.05)


def test_grid_convention_preserves_world_position() -> None:
    """Voxel i covers [i, i+1) * spacing mm, with spacing = old spacing * old / new shape."""
    image = _smooth_image((16, 20, 18))
    target = (0.5, 0.8, 1.25)
    out = resample_image(image, (1.0, 1.0, 1.0), target)
    before = np.array(ndimage.center_of_mass(image[0])) + 0.5
    actual_spacing = np.array(image.shape[1:]) / np.array(out.shape[1:])  # not rounded
    after = (np.array(ndimage.center_of_mass(out[0])) + 0.5) * actual_spacing
    np.testing.assert_allclose(after, before, atol=0.02)


def test_isotropic_data_uses_3d_cubic() -> None:
    image = np.random.default_rng(1).standard_normal((1, 6, 7, 8)).astype(np.float32)
    out = resample_image(image, (1.0, 1.0, 1.0), (0.5, 0.5, 0.5))
    expected = ndimage.zoom(image[0].astype(np.float64), 2, order=3, mode="mirror", grid_mode=True)
    np.testing.assert_allclose(out[0], expected, atol=1e-5)


def test_anisotropic_data_nearest_along_z_cubic_in_plane() -> None:
    """0.7×0.7×5 mm (Z first): Z resampled by nearest, so slices repeat; in-plane is cubic."""
    image = np.random.default_rng(2).standard_normal((2, 4, 10, 12)).astype(np.float32)
    out = resample_image(image, (5.0, 0.7, 0.7), (2.5, 0.35, 0.35))
    assert out.shape == (2, 8, 20, 24)
    for k in range(4):
        np.testing.assert_array_equal(out[:, 2 * k], out[:, 2 * k + 1])
        expected = ndimage.zoom(
            image[1, k].astype(np.float64), 2, order=3, mode="mirror", grid_mode=True
        )
        np.testing.assert_allclose(out[1, 2 * k], expected, atol=1e-5)


def test_anisotropic_linear_separate_axis_and_exact_in_plane() -> None:
    image = np.random.default_rng(4).standard_normal((1, 3, 6, 6)).astype(np.float32)
    out = resample_image(image, (5.0, 0.7, 0.7), (2.5, 0.7, 0.7), order_separate_axis=1)
    # output slice 1 samples z = 0.25: 3/4 of slice 0 plus 1/4 of slice 1
    np.testing.assert_allclose(out[0, 1], 0.75 * image[0, 0] + 0.25 * image[0, 1], atol=1e-6)
    nearest = resample_image(image, (5.0, 0.7, 0.7), (2.5, 0.7, 0.7))
    np.testing.assert_array_equal(nearest[0, 0], image[0, 0])
    np.testing.assert_array_equal(nearest[0, 5], image[0, 2])


def test_anisotropic_target_downsamples_z_by_whole_slices() -> None:
    image = np.random.default_rng(5).standard_normal((1, 8, 5, 5)).astype(np.float32)
    out = resample_image(image, (1.0, 1.0, 1.0), (4.0, 1.0, 1.0))
    assert out.shape == (1, 2, 5, 5)
    # slice o samples z = 4 * o + 1.5, rounded up to 2 and 6
    np.testing.assert_array_equal(out[0], image[0, [2, 6]])


def _dense_label_reference(label: np.ndarray, new_shape, orders) -> np.ndarray:  # type: ignore[no-untyped-def]
    values = np.unique(label)
    counts = [(label == v).sum() for v in values]
    scores = np.stack(
        [resample_separable((label == v).astype(np.float32), new_shape, orders) for v in values]
    )
    background = int(np.argmax(counts))
    others = np.delete(np.arange(values.size), background)
    scores[background] = 1.0 - scores[others].sum(axis=0)  # interpolation is a partition of 1
    best = scores[others].max(axis=0)
    result = values[others][scores[others].argmax(axis=0)]
    result[scores[background] > best] = values[background]  # ties go to the structure
    return result


@pytest.mark.parametrize(
    ("spacing", "target"),
    [
        ((1.0, 1.0, 1.0), (0.7, 1.6, 1.1)),
        ((1.0, 1.0, 1.0), (2.0, 2.0, 2.0)),
        ((4.0, 1.0, 1.0), (4.0, 0.6, 1.5)),  # anisotropic: nearest along Z
    ],
)
def test_label_resampling_is_argmax_of_one_hot_and_invents_nothing(spacing, target) -> None:  # type: ignore[no-untyped-def]
    label = _blob_labels((12, 20, 18))
    out = resample_label(label, spacing, target)
    assert out.dtype == np.uint8
    assert set(np.unique(out)) <= {0, 2, 5}
    orders = axis_orders(spacing, target, 1, 0, 3.0)
    np.testing.assert_array_equal(out, _dense_label_reference(label, out.shape, orders))


def test_label_round_trip_through_finer_grid_is_exact() -> None:
    label = np.zeros((12, 16, 16), dtype=np.uint8)
    label[2:8, 3:12, 4:10] = 2
    label[5:10, 8:14, 8:15] = 5
    up = resample_label(label, (1.0, 1.0, 1.0), (0.4, 0.7, 0.3))
    back = resample_label(up, (0.4, 0.7, 0.3), None, new_shape=label.shape)
    np.testing.assert_array_equal(back, label)


def test_label_resampling_keeps_small_structures() -> None:
    label = np.zeros((16, 16, 16), dtype=np.int16)
    label[4:7, 4:7, 4:7] = 3  # 3×3×3 cube, downsampled by 2
    label[10, :, :] = 4  # one-voxel-thick sheet
    down = resample_label(label, (1.0, 1.0, 1.0), (2.0, 2.0, 2.0))
    assert (down == 3).sum() >= 1 and (down == 4).sum() >= 64
    up = resample_label(label, (1.0, 1.0, 1.0), (0.5, 0.5, 0.5))
    # upsampled by 2 the cube's 8 corner voxels score 0.75**3 < 1/2 and go to background
    assert (up == 3).sum() == 27 * 8 - 8 and (up == 4).sum() == 2 * 32 * 32


def test_label_without_zero_and_negative_values() -> None:
    label = np.full((6, 6, 6), 3, dtype=np.int32)
    label[:2] = -1
    label[4:, 4:, 4:] = 4
    out = resample_label(label, (1.0, 1.0, 1.0), (0.75, 1.5, 0.9))
    assert set(np.unique(out)) == {-1, 3, 4}
    assert out.dtype == np.int32


def test_label_order_zero_and_channel_axis() -> None:
    label = _blob_labels((6, 8, 10))[None]
    out = resample_label(label, (1.0, 1.0, 1.0), (0.5, 2.0, 1.0), order=0)
    assert out.shape == (1, 12, 4, 10)
    expected = resample_separable(label[0], (12, 4, 10), (0, 0, 0))
    np.testing.assert_array_equal(out[0], expected)


def test_label_with_many_values_matches_dense_reference() -> None:
    rng = np.random.default_rng(7)
    label = np.zeros((16, 24, 24), dtype=np.uint16)
    for value in range(1, 41):
        z, y, x = rng.integers(0, [13, 21, 21])
        label[z : z + 3, y : y + 3, x : x + 3] = value * 10
    out = resample_label(label, (1.0, 1.0, 1.0), (0.8, 1.3, 0.9))
    reference = _dense_label_reference(label, out.shape, (1, 1, 1))
    np.testing.assert_array_equal(out, reference)


def test_label_rejects_float_maps() -> None:
    with pytest.raises(ValueError, match="integers"):
        resample_label(np.zeros((4, 4, 4), dtype=np.float32), (1, 1, 1), (2, 2, 2))


def _random_probabilities(k: int, shape: tuple[int, int, int]) -> np.ndarray:
    logits = np.random.default_rng(k).standard_normal((k, *shape)).astype(np.float32)
    exp = np.exp(logits)
    return exp / exp.sum(axis=0, keepdims=True)


@pytest.mark.parametrize("chunk_classes", [1, 2, 5])
def test_probabilities_chunks_agree_and_sum_to_one(chunk_classes: int) -> None:
    probs = _random_probabilities(5, (6, 8, 9))
    out = resample_probabilities(
        probs, (1.0, 1.0, 1.0), new_shape=(11, 5, 13), chunk_classes=chunk_classes
    )
    assert out.shape == (5, 11, 5, 13) and out.dtype == np.float32
    expected = resample_separable(probs, (11, 5, 13), (1, 1, 1))
    np.testing.assert_allclose(out, expected, atol=1e-6)
    np.testing.assert_allclose(out.sum(axis=0), 1.0, atol=1e-5)


@pytest.mark.parametrize(("spacing", "chunk_classes"), [((1.0, 1.0, 1.0), 1), ((5.0, 0.8, 0.8), 3)])
def test_probabilities_to_labels_equals_full_argmax(spacing, chunk_classes) -> None:  # type: ignore[no-untyped-def]
    probs = _random_probabilities(4, (5, 9, 7)).astype(np.float16)
    kwargs = {"new_shape": (12, 14, 10), "chunk_classes": chunk_classes}
    full = resample_probabilities(probs, spacing, **kwargs)
    labels = resample_probabilities_to_labels(probs, spacing, **kwargs)
    assert labels.dtype == np.uint8 and labels.shape == (12, 14, 10)
    np.testing.assert_array_equal(labels, full.argmax(axis=0))


def test_probabilities_to_labels_many_classes_and_target_spacing() -> None:
    probs = _random_probabilities(300, (2, 3, 2))
    labels = resample_probabilities_to_labels(probs, (1.0, 1.0, 1.0), (0.5, 0.5, 0.5))
    assert labels.dtype == np.int32 and labels.shape == (4, 6, 4)
    full = resample_probabilities(probs, (1.0, 1.0, 1.0), (0.5, 0.5, 0.5))
    np.testing.assert_array_equal(labels, full.argmax(axis=0))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "target_spacing or new_shape"),
        ({"new_shape": (0, 2, 2)}, "new_shape"),
        ({"new_shape": (2, 2, 2), "chunk_classes": 0}, "chunk_classes"),
    ],
)
def test_probabilities_argument_errors(kwargs, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        resample_probabilities(np.ones((2, 3, 3, 3)), (1.0, 1.0, 1.0), **kwargs)
