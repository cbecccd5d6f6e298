"""Segmentation losses: soft Dice + cross-entropy, generalised Dice, and deep supervision.

Logits are B×K×Z×Y×X (any number of spatial axes), targets B×Z×Y×X int64 label values in
``0..K-1``. The Dice terms use the softmax in float32 (also under autocast) and a float32
one-hot target; the saved tensors per output are exactly what the memory model counts
(:mod:`autoseg.planner.memory`): the log-softmax of the cross-entropy, the softmax, the one-hot
target and the int64 labels. :func:`autoseg.diagnostics.memory_measure.reference_loss` is
:func:`default_loss` applied to the deep-supervision outputs.

Two variants, as nnU-Net trains them (targets stay label maps; the loss derives the rest):

- **Ignore label**: voxels whose target is the ignore label take no part in any term (a
  partial loss: cross-entropy and Dice statistics over the annotated voxels only).
- **Regions**: K = the number of regions; each output is a sigmoid, its target the voxels
  whose label is one of the region's values; binary cross-entropy (mean over regions and
  voxels) + soft Dice per region (every region counts; there is no background output).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from autoseg.errors import ConfigError
from autoseg.planner.heuristics import LOSSES
from autoseg.strict import choice_error

__all__ = [
    "DeepSupervisionLoss",
    "SegmentationLoss",
    "deep_supervision_weights",
    "default_loss",
    "region_targets",
]


@dataclass(frozen=True)
class SegmentationLoss:
    """One output's loss.

    Attributes:
        kind: "dice_ce" (cross-entropy + 1 - soft Dice), "generalized_dice_ce" (cross-entropy
            + 1 - generalised Dice, classes weighted by 1 / reference volume²), "ce" or "dice".
        include_background: Let class 0 take part in the Dice term (cross-entropy always
            covers every class).
        batch_dice: Sum the Dice statistics over the batch (one Dice per class) instead of
            per sample; steadier for small patches with little foreground (DeepMedic).
        smooth: Added to numerator and denominator (an absent class predicted absent scores 1).
        regions: Region-based training: the label values of each output's region, in output
            order (empty: one softmax class per output).
        ignore_label: Target value excluded from every term (None: none).
    """

    kind: str = "dice_ce"
    include_background: bool = False
    batch_dice: bool = False
    smooth: float = 1e-5
    regions: tuple[tuple[int, ...], ...] = ()
    ignore_label: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in LOSSES:
            raise choice_error("loss", self.kind, LOSSES)

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The scalar loss (float32) of ``logits`` against integer ``target``."""
        if logits.dim() != target.dim() + 1 or logits.shape[2:] != target.shape[1:]:
            raise ConfigError(
                f"loss needs logits B×K×… and labels B×… of the same spatial shape, got "
                f"{list(logits.shape)} and {list(target.shape)}"
            )
        if self.regions or self.ignore_label is not None:
            return self._partial(logits, target)
        loss = logits.new_zeros((), dtype=torch.float32)
        if self.kind != "dice":
            loss = loss + F.cross_entropy(logits, target)
        if self.kind != "ce":
            loss = loss + 1.0 - self._dice(logits, target)
        return loss

    def _partial(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The region and/or ignore-label variant (see the module docstring)."""
        valid = None if self.ignore_label is None else target != self.ignore_label
        loss = logits.new_zeros((), dtype=torch.float32)
        if self.regions:
            if logits.shape[1] != len(self.regions):
                raise ConfigError(
                    f"region loss needs one output per region ({len(self.regions)}), got "
                    f"{logits.shape[1]}"
                )
            onehot = region_targets(target, self.regions)
            if self.kind != "dice":
                bce = F.binary_cross_entropy_with_logits(logits.float(), onehot, reduction="none")
                loss = loss + _masked_mean(bce, valid)
            if self.kind != "ce":
                probs = torch.sigmoid(logits.float())
                loss = loss + 1.0 - self._overlap(*_masked(probs, onehot, valid), first=0)
            return loss
        assert valid is not None  # no regions: the ignore label is set
        labels = target.masked_fill(~valid, 0)
        if self.kind != "dice":
            loss = loss + _masked_mean(F.cross_entropy(logits, labels, reduction="none"), valid)
        if self.kind != "ce":
            probs = torch.softmax(logits, dim=1, dtype=torch.float32)
            onehot = torch.zeros_like(probs).scatter_(1, labels[:, None], 1.0)
            first = 0 if self.include_background or probs.shape[1] == 1 else 1
            loss = loss + 1.0 - self._overlap(*_masked(probs, onehot, valid), first=first)
        return loss

    def _dice(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(logits, dim=1, dtype=torch.float32)
        onehot = torch.zeros_like(probs).scatter_(1, target[:, None], 1.0)
        first = 0 if self.include_background or probs.shape[1] == 1 else 1
        return self._overlap(probs, onehot, first=first)

    def _overlap(self, probs: torch.Tensor, onehot: torch.Tensor, *, first: int) -> torch.Tensor:
        """Soft (or generalised) Dice of ``probs`` and ``onehot`` over channels ``first:``."""
        probs, onehot = probs[:, first:], onehot[:, first:]
        dims: tuple[int, ...] = tuple(range(2, probs.dim()))
        if self.batch_dice:
            dims = (0, *dims)
        intersection = (probs * onehot).sum(dims)
        reference = onehot.sum(dims)
        denominator = probs.sum(dims) + reference
        if self.kind == "generalized_dice_ce":
            weights = _volume_weights(reference)
            numerator = 2.0 * (weights * intersection).sum(-1) + self.smooth
            return (numerator / ((weights * denominator).sum(-1) + self.smooth)).mean()
        return ((2.0 * intersection + self.smooth) / (denominator + self.smooth)).mean()


def region_targets(target: torch.Tensor, regions: Sequence[Sequence[int]]) -> torch.Tensor:
    """float32 B×R×… masks: channel r is 1 where ``target`` holds a value of region r."""
    masks = []
    for members in regions:
        mask = target == int(members[0])
        for value in members[1:]:
            mask = mask | (target == int(value))
        masks.append(mask)
    return torch.stack(masks, dim=1).to(torch.float32)


def _masked(
    probs: torch.Tensor, onehot: torch.Tensor, valid: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``probs`` and ``onehot`` with the unannotated voxels (``~valid``) set to 0."""
    if valid is None:
        return probs, onehot
    weight = valid[:, None].to(probs.dtype)
    return probs * weight, onehot * weight


def _masked_mean(values: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``values`` (B×… or B×R×…) over the annotated voxels; 0 when there are none."""
    values = values.float()
    if valid is None:
        return values.mean()
    weight = valid.to(torch.float32)
    if values.dim() == weight.dim() + 1:
        weight = weight[:, None].expand_as(values)
    return (values * weight).sum() / weight.sum().clamp_min(1.0)


def _volume_weights(reference: torch.Tensor) -> torch.Tensor:
    """1 / volume² per class; classes absent from the reference get the largest present weight."""
    present = reference > 0
    weights = torch.where(present, 1.0 / reference.clamp_min(1.0) ** 2, torch.zeros_like(reference))
    largest = weights.amax(dim=-1, keepdim=True)
    fallback = torch.where(largest > 0, largest, torch.ones_like(largest))
    return torch.where(present, weights, fallback.expand_as(weights))


def deep_supervision_weights(num_outputs: int) -> tuple[float, ...]:
    """Weights of the deep-supervision outputs (full resolution first): halved per level,
    normalised to sum to 1. E.g. 3 outputs -> (4/7, 2/7, 1/7)."""
    if num_outputs < 1:
        raise ConfigError(f"deep supervision needs at least one output, got {num_outputs}")
    raw = [0.5**i for i in range(num_outputs)]
    total = sum(raw)
    return tuple(w / total for w in raw)


@dataclass(frozen=True)
class DeepSupervisionLoss:
    """Weighted sum of one loss over several outputs (full resolution first).

    Attributes:
        loss: The per-output loss.
        weights: One weight per output (see :func:`deep_supervision_weights`).
    """

    loss: SegmentationLoss
    weights: tuple[float, ...]

    def __call__(
        self, outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """Sum of ``weight * loss(output, target)``; extra outputs beyond the weights are
        ignored, missing ones are an error."""
        if len(outputs) < len(self.weights) or len(targets) < len(self.weights):
            raise ConfigError(
                f"deep supervision expects {len(self.weights)} outputs and targets, got "
                f"{len(outputs)} and {len(targets)}"
            )
        total = outputs[0].new_zeros((), dtype=torch.float32)
        for weight, logits, target in zip(self.weights, outputs, targets):
            if weight:
                total = total + weight * self.loss(logits, target)
        return total


def default_loss(num_outputs: int) -> DeepSupervisionLoss:
    """The default training loss of the U-Net: Dice (foreground classes) + cross-entropy on
    every deep-supervision output, weights halving per level."""
    return DeepSupervisionLoss(SegmentationLoss("dice_ce"), deep_supervision_weights(num_outputs))
