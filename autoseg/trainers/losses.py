"""Segmentation losses: soft Dice + cross-entropy, generalised Dice, and deep supervision.

Logits are B×K×Z×Y×X (any number of spatial axes), targets B×Z×Y×X int64 label values in
``0..K-1``. The Dice terms use the softmax in float32 (also under autocast) and a float32
one-hot target; the saved tensors per output are exactly what the memory model counts
(:mod:`autoseg.planner.memory`): the log-softmax of the cross-entropy, the softmax, the one-hot
target and the int64 labels. :func:`autoseg.diagnostics.memory_measure.reference_loss` is
:func:`default_loss` applied to the deep-supervision outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from autoseg.errors import ConfigError
from autoseg.strict import choice_error

__all__ = [
    "LOSS_KINDS",
    "DeepSupervisionLoss",
    "SegmentationLoss",
    "deep_supervision_weights",
    "default_loss",
]

LOSS_KINDS = ("dice_ce", "generalized_dice_ce", "ce", "dice")


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
    """

    kind: str = "dice_ce"
    include_background: bool = False
    batch_dice: bool = False
    smooth: float = 1e-5

    def __post_init__(self) -> None:
        if self.kind not in LOSS_KINDS:
            raise choice_error("loss", self.kind, LOSS_KINDS)

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The scalar loss (float32) of ``logits`` against integer ``target``."""
        if logits.dim() != target.dim() + 1 or logits.shape[2:] != target.shape[1:]:
            raise ConfigError(
                f"loss needs logits B×K×… and labels B×… of the same spatial shape, got "
                f"{list(logits.shape)} and {list(target.shape)}"
            )
        loss = logits.new_zeros((), dtype=torch.float32)
        if self.kind != "dice":
            loss = loss + F.cross_entropy(logits, target)
        if self.kind != "ce":
            loss = loss + 1.0 - self._dice(logits, target)
        return loss

    def _dice(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(logits, dim=1, dtype=torch.float32)
        onehot = torch.zeros_like(probs).scatter_(1, target[:, None], 1.0)
        first = 0 if self.include_background or probs.shape[1] == 1 else 1
        probs, onehot = probs[:, first:], onehot[:, first:]
        dims: tuple[int, ...] = tuple(range(2, logits.dim()))
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
