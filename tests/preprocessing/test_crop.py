"""Tests for autoseg.preprocessing.crop."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autoseg.preprocessing.crop import (
    box_shape,
    crop_to_box,
    nonzero_bounding_box,
    nonzero_mask,
    uncrop,
)


def _two_channel_image() -> np.ndarray:
    image = np.zeros((2, 6, 7, 8), dtype=np.float32)
    image[0, 1, 2, 3] = 5.0
    image[1, 4, 5, 6] = -2.0  # negative values count as non-zero
    return image


def test_bounding_box_is_union_over_channels() -> None:
    box = nonzero_bounding_box(_two_channel_image())
    assert box == ((1, 5), (2, 6), (3, 7))
    assert all(type(v) is int for span in box for v in span)
    assert json.loads(json.dumps(box)) == [[1, 5], [2, 6], [3, 7]]


def test_bounding_box_of_single_channel_volume() -> None:
    volume = np.zeros((4, 5, 6))
    volume[2, 1:3, 5] = 1
    assert nonzero_bounding_box(volume) == ((2, 3), (1, 3), (5, 6))


def test_bounding_box_uses_roi_when_given() -> None:
    roi = np.zeros((6, 7, 8), dtype=bool)
    roi[0:2, 0:3, 4:8] = True
    assert nonzero_bounding_box(_two_channel_image(), roi) == ((0, 2), (0, 3), (4, 8))


@pytest.mark.parametrize("empty_roi", [False, True])
def test_all_zero_gives_full_box(empty_roi: bool) -> None:
    image = np.zeros((1, 3, 4, 5))
    roi = np.zeros((3, 4, 5)) if empty_roi else None
    assert nonzero_bounding_box(image, roi) == ((0, 3), (0, 4), (0, 5))


def test_roi_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="roi shape"):
        nonzero_bounding_box(np.ones((1, 3, 4, 5)), np.ones((3, 4, 6)))


@pytest.mark.parametrize("channels", [None, 3])
def test_crop_then_uncrop_round_trips(channels: int | None) -> None:
    rng = np.random.default_rng(0)
    shape = (9, 10, 11) if channels is None else (channels, 9, 10, 11)
    array = np.zeros(shape, dtype=np.int16)
    array[..., 2:7, 3:5, 1:10] = rng.integers(1, 9, size=(*shape[:-3], 5, 2, 9))
    box = nonzero_bounding_box(array)
    cropped = crop_to_box(array, box)
    assert cropped.shape[-3:] == box_shape(box) == (5, 2, 9)
    restored = uncrop(cropped, box, array.shape[-3:])
    assert restored.dtype == array.dtype
    np.testing.assert_array_equal(restored, array)


def test_uncrop_per_channel_fill_for_probabilities() -> None:
    probs = np.full((3, 2, 2, 2), 1 / 3, dtype=np.float32)
    box = ((1, 3), (0, 2), (2, 4))
    full = uncrop(probs, box, (4, 2, 5), fill=[1.0, 0.0, 0.0])
    assert full.shape == (3, 4, 2, 5)
    np.testing.assert_allclose(full.sum(axis=0), 1.0, rtol=1e-6)
    assert full[0, 0, 0, 0] == 1.0 and full[1, 0, 0, 0] == 0.0
    np.testing.assert_array_equal(full[:, 1:3, :, 2:4], probs)


def test_uncrop_scalar_fill() -> None:
    label = np.ones((1, 1, 1), dtype=np.uint8)
    full = uncrop(label, ((0, 1), (1, 2), (0, 1)), (2, 3, 1), fill=7)
    np.testing.assert_array_equal(full[:, :, 0], [[7, 1, 7], [7, 7, 7]])


@pytest.mark.parametrize(
    ("array", "box", "full_shape", "fill", "message"),
    [
        (np.ones((2, 2, 2)), ((0, 3), (0, 2), (0, 2)), (4, 4, 4), 0, "does not match"),
        (np.ones((2, 2, 2)), ((3, 5), (0, 2), (0, 2)), (4, 4, 4), 0, "does not fit"),
        (np.ones((2, 2, 2, 2)), ((0, 2), (0, 2), (0, 2)), (3, 3, 3), [1, 0, 0], "per-channel"),
        (np.ones((2, 2, 2)), ((0, 2), (0, 2)), (3, 3, 3), 0, "one \\(start, stop\\)"),
    ],
)
def test_uncrop_rejects_inconsistent_arguments(
    array: np.ndarray, box: tuple, full_shape: tuple, fill: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        uncrop(array, box, full_shape, fill=fill)  # type: ignore[arg-type]


def test_crop_is_a_view_with_exact_values() -> None:
    array = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    cropped = crop_to_box(array, ((1, 2), (0, 4), (2, 5)))
    np.testing.assert_array_equal(cropped, array[:, 1:2, 0:4, 2:5])
    assert np.shares_memory(cropped, array)


def test_nonzero_mask_fills_holes_across_channels() -> None:
    image = np.zeros((2, 7, 7, 7))
    image[0, 1:6, 1:6, 1:6] = 1.0
    image[0, 2:5, 2:5, 2:5] = 0.0  # a hole enclosed by channel 0
    image[1, 0, 0, 0] = 3.0  # only channel 1 is non-zero here
    mask = nonzero_mask(image)
    assert mask.dtype == bool and mask.shape == (7, 7, 7)
    assert mask[3, 3, 3] and mask[0, 0, 0]
    assert mask.sum() == 5**3 + 1
