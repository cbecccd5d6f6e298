"""Tests for autoseg.preprocessing.normalize."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autoseg.errors import PlansError
from autoseg.preprocessing.normalize import (
    ChannelNormalization,
    normalize_image,
    scheme_for_channel_name,
)


def _ct(**overrides: object) -> ChannelNormalization:
    values: dict = {
        "scheme": "ct",
        "use_mask": False,
        "mean": 10.0,
        "std": 5.0,
        "lower": -20.0,
        "upper": 40.0,
    }
    values.update(overrides)
    return ChannelNormalization(**values)


def test_ct_clips_then_uses_dataset_statistics() -> None:
    image = np.array([-100.0, -20.0, 10.0, 15.0, 40.0, 1000.0]).reshape(1, 1, 1, 6)
    out = normalize_image(image, [_ct()])
    np.testing.assert_allclose(out.ravel(), [-6.0, -6.0, 0.0, 1.0, 6.0, 6.0])
    assert out.dtype == np.float32


def test_zscore_inside_mask_and_zero_outside() -> None:
    image = np.array([0.0, 2.0, 4.0, 6.0, 100.0]).reshape(1, 1, 1, 5)
    mask = np.array([False, True, True, True, False]).reshape(1, 1, 5)
    out = normalize_image(image, [ChannelNormalization("zscore", True)], mask)
    std = np.std([2.0, 4.0, 6.0])
    np.testing.assert_allclose(out.ravel(), [0.0, -2 / std, 0.0, 2 / std, 0.0], atol=1e-6)


def test_zscore_over_whole_image_without_mask() -> None:
    image = np.random.default_rng(0).normal(50.0, 7.0, size=(1, 4, 5, 6))
    out = normalize_image(image, [ChannelNormalization("zscore", False)])
    assert abs(float(out.mean())) < 1e-5 and abs(float(out.std()) - 1.0) < 1e-5


def test_zscore_mask_defaults_to_nonzero_region() -> None:
    image = np.zeros((1, 3, 3, 3))
    image[0, 1, 1, :] = [1.0, 2.0, 3.0]
    out = normalize_image(image, [ChannelNormalization("zscore", True)])
    np.testing.assert_allclose(out[0, 1, 1], np.array([-1.0, 0.0, 1.0]) / np.std([1, 2, 3]))
    assert np.count_nonzero(out) == 2


def test_zscore_constant_image_is_guarded() -> None:
    out = normalize_image(np.full((1, 2, 2, 2), 7.0), [ChannelNormalization("zscore", False)])
    assert np.all(np.isfinite(out)) and np.all(out == 0.0)


def test_empty_mask_gives_zeros() -> None:
    out = normalize_image(
        np.ones((1, 2, 2, 2)),
        [ChannelNormalization("zscore", True)],
        np.zeros((2, 2, 2), dtype=bool),
    )
    assert np.all(out == 0.0)


def test_rescale_uses_case_percentiles() -> None:
    image = np.arange(1001, dtype=np.float64).reshape(1, 7, 11, 13)
    out = normalize_image(image, [ChannelNormalization("rescale", False)])
    assert out.min() == 0.0 and out.max() == 1.0
    # 0.5 / 99.5 percentiles of 0..1000 are 5 and 995
    np.testing.assert_allclose(out.ravel()[[0, 5, 500, 995, 1000]], [0, 0, 0.5, 1, 1], atol=1e-6)


def test_rescale_with_fixed_bounds() -> None:
    image = np.array([-10.0, 0.0, 127.5, 255.0, 300.0]).reshape(1, 1, 1, 5)
    scheme = ChannelNormalization("rescale", False, lower=0.0, upper=255.0)
    np.testing.assert_allclose(normalize_image(image, [scheme]).ravel(), [0, 0, 0.5, 1, 1])


def test_none_casts_only_and_input_is_untouched() -> None:
    image = np.array([[[[-3, 0, 1000]]]], dtype=np.int16)
    out = normalize_image(image, [ChannelNormalization("none", True)])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, image)
    np.testing.assert_array_equal(image, [[[[-3, 0, 1000]]]])


def test_channels_use_their_own_schemes() -> None:
    rng = np.random.default_rng(1)
    image = np.stack([rng.normal(0, 300, (3, 4, 5)), rng.normal(100, 20, (3, 4, 5))])
    out = normalize_image(image, [_ct(), ChannelNormalization("zscore", False)])
    np.testing.assert_allclose(out[0], (np.clip(image[0], -20, 40) - 10) / 5, rtol=1e-5)
    assert abs(float(out[1].mean())) < 1e-5


def test_scheme_count_and_mask_shape_must_match() -> None:
    with pytest.raises(ValueError, match="2 normalization schemes for 1 channels"):
        normalize_image(np.ones((1, 2, 2, 2)), [_ct(), _ct()])
    with pytest.raises(ValueError, match="mask shape"):
        normalize_image(np.ones((1, 2, 2, 2)), [_ct()], np.ones((2, 2, 3), dtype=bool))


def test_unknown_scheme_suggests_nearest() -> None:
    with pytest.raises(PlansError, match="did you mean 'zscore'"):
        ChannelNormalization("zscor", False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scheme": "ct", "use_mask": False, "mean": 1.0}, "needs mean, std, lower, upper"),
        ({"std": 0.0}, "std > 0"),
        ({"lower": 50.0}, "lower <= upper"),
        ({"scheme": "zscore", "use_mask": False, "mean": 3.0}, "uses no stored statistics"),
        ({"scheme": "rescale", "use_mask": False, "lower": 3.0}, "both or neither"),
        ({"use_mask": "yes"}, "use_mask must be"),
        ({"mean": float("nan")}, "finite"),
    ],
)
def test_invalid_normalization_raises(kwargs: dict, message: str) -> None:
    with pytest.raises(PlansError, match=message):
        ChannelNormalization(**kwargs) if "scheme" in kwargs else _ct(**kwargs)


def test_dict_round_trip_converts_numpy_scalars() -> None:
    scheme = _ct(mean=np.float32(12.5), std=np.float64(3.0), lower=np.int64(-5), use_mask=np.True_)
    data = scheme.to_dict()
    assert type(data["mean"]) is float and type(data["lower"]) is float
    assert type(data["use_mask"]) is bool
    restored = ChannelNormalization.from_dict(json.loads(json.dumps(data)))
    assert restored == scheme


@pytest.mark.parametrize(
    ("change", "message"),
    [("extra", "unknown keys \\['extra'\\]"), ("drop", "missing keys \\['std'\\]")],
)
def test_from_dict_is_strict(change: str, message: str) -> None:
    data = _ct().to_dict()
    if change == "extra":
        data["extra"] = 1
    else:
        del data["std"]
    with pytest.raises(PlansError, match=message) as info:
        ChannelNormalization.from_dict(data)
    assert "expected keys: scheme, use_mask, mean, std, lower, upper" in str(info.value)


@pytest.mark.parametrize(
    ("name", "scheme"),
    [
        ("CT", "ct"),
        ("ct", "ct"),
        ("noNorm", "none"),
        ("rescale_to_0_1", "rescale"),
        ("T1", "zscore"),
        ("FLAIR", "zscore"),
        ("zscore", "zscore"),
    ],
)
def test_scheme_for_channel_name(name: str, scheme: str) -> None:
    assert scheme_for_channel_name(name) == scheme
