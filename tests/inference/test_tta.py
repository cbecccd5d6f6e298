"""Tests for mirroring test-time augmentation."""

from __future__ import annotations

import pytest
import torch

from autoseg.inference.tta import mirror_combinations, predict_with_mirroring

ALL_FLIPS_AS_DIMS = [(), (2,), (3,), (4,), (2, 3), (2, 4), (3, 4), (2, 3, 4)]


@pytest.mark.parametrize(
    ("axes", "expected"),
    [
        ((), [()]),
        ((1,), [(), (1,)]),
        ((2, 0), [(), (0,), (2,), (0, 2)]),
        ((0, 1, 2), [(), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]),
    ],
)
def test_mirror_combinations_lists_every_subset(axes, expected):
    assert mirror_combinations(axes) == expected


@pytest.mark.parametrize("axes", [(3,), (-1,), (0, 0), (1, 2, 1)])
def test_mirror_combinations_rejects_bad_axes(axes):
    with pytest.raises(ValueError, match="axes"):
        mirror_combinations(axes)


def _asymmetric_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    conv = torch.nn.Conv3d(2, 3, 3, padding=1)
    return conv.eval()


def test_mirroring_equals_hand_computed_mean_over_eight_flips():
    model = _asymmetric_model()
    x = torch.randn(2, 2, 6, 7, 5, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = sum(
            torch.flip(model(torch.flip(x, d)), d) if d else model(x) for d in ALL_FLIPS_AS_DIMS
        )
        expected = expected / 8
        got = predict_with_mirroring(model, x, (0, 1, 2))
        plain = model(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    # The asymmetric model really depends on the flips, so the test can tell them apart.
    assert not torch.allclose(got, plain, atol=1e-3)


def test_predictions_are_flipped_back_before_averaging():
    # model(x) = x * ramp is position dependent; flipping back gives x * mean_m flip(ramp, m).
    ramp = torch.arange(4 * 3 * 5, dtype=torch.float32).reshape(1, 1, 4, 3, 5)
    x = torch.randn(1, 1, 4, 3, 5, generator=torch.Generator().manual_seed(2))
    got = predict_with_mirroring(lambda t: t * ramp, x, (0, 2))
    mean_ramp = (ramp + ramp.flip(2) + ramp.flip(4) + ramp.flip(2, 4)) / 4
    torch.testing.assert_close(got, x * mean_ramp)


def test_flip_equivariant_model_is_unchanged_by_tta():
    torch.manual_seed(3)
    pointwise = torch.nn.Sequential(torch.nn.Conv3d(2, 4, 1), torch.nn.Sigmoid()).eval()
    x = torch.randn(3, 2, 5, 6, 7)
    with torch.no_grad():
        torch.testing.assert_close(predict_with_mirroring(pointwise, x, (0, 1, 2)), pointwise(x))


def test_no_axes_is_the_plain_prediction_and_input_is_untouched():
    x = torch.randn(1, 1, 3, 4, 5, dtype=torch.float64)
    before = x.clone()
    got = predict_with_mirroring(lambda t: t, x, ())
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, before.float())
    got.add_(1.0)  # the result is a private copy, even for an identity "model"
    torch.testing.assert_close(x, before)


def test_mirroring_rejects_non_5d_batch_and_list_outputs():
    with pytest.raises(ValueError, match="B×C×Z×Y×X"):
        predict_with_mirroring(lambda t: t, torch.zeros(1, 3, 4, 5), (0,))
    with pytest.raises(ValueError, match="eval mode"):
        predict_with_mirroring(lambda t: [t, t], torch.zeros(1, 1, 3, 4, 5), (0,))
