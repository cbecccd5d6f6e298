"""Losses: Dice + CE, generalised Dice, deep supervision, and the memory model's reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from autoseg.errors import ConfigError
from autoseg.trainers.losses import (
    DeepSupervisionLoss,
    SegmentationLoss,
    deep_supervision_weights,
    default_loss,
)


def _perfect_logits(target: torch.Tensor, classes: int, scale: float = 50.0) -> torch.Tensor:
    return F.one_hot(target, classes).permute(0, 4, 1, 2, 3).float() * scale


@pytest.fixture
def target() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, 3, (2, 4, 5, 6), generator=gen)


def test_perfect_prediction_scores_zero(target: torch.Tensor) -> None:
    logits = _perfect_logits(target, 3)
    for kind in ("dice_ce", "generalized_dice_ce", "dice", "ce"):
        assert float(SegmentationLoss(kind)(logits, target)) == pytest.approx(0.0, abs=1e-4)


def test_ce_equals_torch_and_dice_adds_its_term(target: torch.Tensor) -> None:
    logits = torch.randn(2, 3, 4, 5, 6, generator=torch.Generator().manual_seed(1))
    ce = float(SegmentationLoss("ce")(logits, target))
    assert ce == pytest.approx(float(F.cross_entropy(logits, target)), rel=1e-6)
    probs = torch.softmax(logits, 1)[:, 1:]
    onehot = F.one_hot(target, 3).permute(0, 4, 1, 2, 3)[:, 1:].float()
    inter, denom = (probs * onehot).sum((2, 3, 4)), (probs + onehot).sum((2, 3, 4))
    dice = ((2 * inter + 1e-5) / (denom + 1e-5)).mean()
    both = float(SegmentationLoss("dice_ce")(logits, target))
    assert both == pytest.approx(ce + 1 - float(dice), rel=1e-5)


def test_background_excluded_unless_asked(target: torch.Tensor) -> None:
    logits = _perfect_logits(target, 3)
    logits[:, 0] = 100.0  # everything predicted background
    without = float(SegmentationLoss("dice", include_background=False)(logits, target))
    with_bg = float(SegmentationLoss("dice", include_background=True)(logits, target))
    assert without == pytest.approx(1.0, abs=1e-3) and with_bg < without


def test_generalized_dice_weights_rare_classes_more() -> None:
    target = torch.zeros(1, 10, 10, 10, dtype=torch.int64)
    target[0, :5] = 1  # large class 1
    target[0, 9, 9, 9] = 2  # one voxel of class 2
    miss_rare = _perfect_logits(target, 3)
    miss_rare[0, :, 9, 9, 9] = torch.tensor([50.0, 0.0, 0.0])
    generalized = float(SegmentationLoss("generalized_dice_ce")(miss_rare, target))
    plain = float(SegmentationLoss("dice_ce")(miss_rare, target))
    assert generalized > 0.9 and plain < 0.6  # the rare class dominates the generalised Dice


def test_gradients_flow(target: torch.Tensor) -> None:
    logits = torch.randn(2, 3, 4, 5, 6, requires_grad=True)
    SegmentationLoss("dice_ce")(logits, target).backward()
    assert logits.grad is not None and float(logits.grad.abs().sum()) > 0


def test_deep_supervision_weights_halve_and_normalise() -> None:
    assert deep_supervision_weights(3) == pytest.approx((4 / 7, 2 / 7, 1 / 7))
    assert deep_supervision_weights(1) == (1.0,)
    with pytest.raises(ConfigError):
        deep_supervision_weights(0)


def test_deep_supervision_sums_weighted_outputs(target: torch.Tensor) -> None:
    outputs = [torch.randn(2, 3, 4, 5, 6), torch.randn(2, 3, 2, 3, 3)]
    targets = [target, target[:, ::2, ::2, ::2]]
    loss = DeepSupervisionLoss(SegmentationLoss("ce"), (0.75, 0.25))
    expected = 0.75 * F.cross_entropy(outputs[0], targets[0]) + 0.25 * F.cross_entropy(
        outputs[1], targets[1]
    )
    assert float(loss(outputs, targets)) == pytest.approx(float(expected), rel=1e-6)
    with pytest.raises(ConfigError, match="expects 2 outputs"):
        loss(outputs[:1], targets[:1])


def test_memory_model_reference_loss_is_the_trainer_loss(target: torch.Tensor) -> None:
    from autoseg.diagnostics.memory_measure import reference_loss

    outputs = [torch.randn(2, 3, 4, 5, 6), torch.randn(2, 3, 2, 3, 3)]
    targets = [target, target[:, ::2, ::2, ::2]]
    assert float(reference_loss(outputs, targets)) == float(default_loss(2)(outputs, targets))
    assert math.isfinite(float(reference_loss(outputs, targets)))


def test_shape_mismatch_is_explained() -> None:
    with pytest.raises(ConfigError, match="same spatial shape"):
        SegmentationLoss()(torch.randn(1, 2, 4, 4, 4), torch.zeros(1, 4, 4, 5, dtype=torch.int64))


REGIONS = ((1, 2), (2,))  # whole = labels 1 and 2, core = label 2


def test_region_loss_is_bce_plus_dice_per_sigmoid_region(target: torch.Tensor) -> None:
    logits = torch.randn(2, 2, 4, 5, 6, generator=torch.Generator().manual_seed(2))
    masks = torch.stack([(target == 1) | (target == 2), target == 2], 1).float()
    bce = F.binary_cross_entropy_with_logits(logits, masks)
    probs = torch.sigmoid(logits)
    inter, denom = (probs * masks).sum((2, 3, 4)), (probs + masks).sum((2, 3, 4))
    dice = ((2 * inter + 1e-5) / (denom + 1e-5)).mean()  # every region counts
    loss = float(SegmentationLoss("dice_ce", regions=REGIONS)(logits, target))
    assert loss == pytest.approx(float(bce) + 1 - float(dice), rel=1e-5)
    assert float(SegmentationLoss("ce", regions=REGIONS)(logits, target)) == pytest.approx(
        float(bce), rel=1e-6
    )
    perfect = (masks * 2 - 1) * 50.0
    assert float(SegmentationLoss("dice_ce", regions=REGIONS)(perfect, target)) < 1e-4
    with pytest.raises(ConfigError, match=r"one output per region \(2\), got 3"):
        SegmentationLoss(regions=REGIONS)(torch.zeros(2, 3, 4, 5, 6), target)


@pytest.mark.parametrize("regions", [(), REGIONS])
@pytest.mark.parametrize("kind", ["dice_ce", "ce", "dice", "generalized_dice_ce"])
def test_ignore_label_voxels_take_no_part_in_the_loss(
    target: torch.Tensor, regions: tuple[tuple[int, ...], ...], kind: str
) -> None:
    """Whatever the network outputs on ignore-label voxels, loss and gradients elsewhere are
    the same, and those voxels get no gradient."""
    sparse = target.clone()
    sparse[:, ::2] = 3  # the ignore label on every other slice
    channels = len(regions) or 3
    logits = torch.randn(2, channels, 4, 5, 6, generator=torch.Generator().manual_seed(3))
    loss = SegmentationLoss(kind, regions=regions, ignore_label=3)
    changed = logits.clone()
    changed[:, :, ::2] = torch.randn(2, channels, 2, 5, 6)
    first = logits.clone().requires_grad_()
    result = loss(first, sparse)
    result.backward()
    value = result.detach()
    assert first.grad is not None and float(first.grad[:, :, ::2].abs().max()) == 0.0
    assert float(loss(changed, sparse)) == pytest.approx(float(value), rel=1e-6)
    assert math.isfinite(float(value))
    everything = torch.full_like(sparse, 3)  # no annotated voxel: no NaN
    assert math.isfinite(float(loss(logits, everything)))


def test_ignore_label_cross_entropy_is_the_mean_over_annotated_voxels(target: torch.Tensor) -> None:
    logits = torch.randn(2, 3, 4, 5, 6, generator=torch.Generator().manual_seed(4))
    sparse = target.clone()
    sparse[:, 1:] = 3
    expected = F.cross_entropy(logits[:, :, :1], target[:, :1])
    value = SegmentationLoss("ce", ignore_label=3)(logits, sparse)
    assert float(value) == pytest.approx(float(expected), rel=1e-6)


def test_pseudo_dice_counts_of_regions_and_without_ignored_voxels() -> None:
    from autoseg.trainers.strategy import confusion_counts

    target = torch.tensor([[[[0, 1, 2, 2, 3, 3]]]])  # 3: ignore
    logits = torch.tensor([[[[-1.0, 1, 1, -1, 1, 1]]], [[[1.0, -1, 1, 1, 1, -1]]]])[None]
    counts = confusion_counts(logits, target, 2, REGIONS, 3)
    # whole (1, 2): predicted at voxels 1, 2 (and 4, 5: ignored); reference 1, 2, 3
    # core (2): predicted at 0, 2, 3 (and 4: ignored); reference 2, 3
    assert counts.tolist() == [[2, 0, 1], [2, 1, 0]]
    classes = torch.zeros(1, 3, 1, 1, 6)
    classes[0, 1] = 1.0  # every voxel predicted class 1
    labels = torch.tensor([[[[0, 1, 2, 1, 3, 3]]]])
    assert confusion_counts(classes, labels, 3, (), 3).tolist() == [[2, 2, 0], [0, 0, 1]]
