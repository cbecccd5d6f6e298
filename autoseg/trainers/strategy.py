"""What differs between network families during training, as a small strategy object.

The shared loop (:mod:`autoseg.trainers.loop`) asks the strategy of the configuration's
network kind (registry: :data:`autoseg.trainers.registry.STRATEGIES`) for its samplers and
augmentation, how a batch becomes network inputs and targets, how the network is called,
which loss it trains with, and how many output voxels inference computes (for the time
budget). Everything else (optimiser, schedule, checkpoints, logging) is shared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from batchgenerators.dataloading.data_loader import DataLoader
from batchgenerators.transforms.abstract_transforms import Compose

from autoseg.planner.plans import ConfigurationPlan, Plans
from autoseg.trainers.losses import DeepSupervisionLoss, region_targets

__all__ = ["FamilyDefaults", "LoaderSpec", "TrainingStrategy", "confusion_counts"]


@dataclass(frozen=True)
class FamilyDefaults:
    """Hyper-parameters a family uses when TrainConfig leaves them at None.

    (The optimiser and learning rate come from the plan: ``ConfigurationPlan.optimizer`` and
    ``lr``.)

    Attributes:
        momentum: SGD momentum.
        loss: Loss kind (see :data:`autoseg.planner.heuristics.LOSSES`).
        channels_last_on_cpu: Train in the channels-last-3d memory format on a CPU.
        region_loss: Loss kind of region-based training (binary cross-entropy + Dice per
            region, as nnU-Net trains regions).
    """

    momentum: float
    loss: str
    channels_last_on_cpu: bool = False
    region_loss: str = "dice_ce"


@dataclass(frozen=True)
class LoaderSpec:
    """A sampler and the transforms applied to its batches (None: no transforms)."""

    sampler: DataLoader
    transforms: Compose | None


class TrainingStrategy(Protocol):
    """Per-family training behaviour (see the module docstring)."""

    kind: str
    defaults: FamilyDefaults

    def train_loader(
        self, plans: Plans, config: ConfigurationPlan, folder: Path, case_ids: Sequence[str]
    ) -> LoaderSpec:
        """Augmented training batches."""
        ...

    def val_loader(
        self, plans: Plans, config: ConfigurationPlan, folder: Path, case_ids: Sequence[str]
    ) -> LoaderSpec:
        """Un-augmented validation batches (same sampling rules)."""
        ...

    def to_device(
        self, batch: dict[str, Any], config: ConfigurationPlan, device: torch.device
    ) -> tuple[Any, list[torch.Tensor]]:
        """Network inputs and int64 targets (one per supervised output, full resolution first)."""
        ...

    def forward(self, network: torch.nn.Module, inputs: Any) -> list[torch.Tensor]:
        """Logits of every supervised output (one in eval mode)."""
        ...

    def make_loss(self, plans: Plans, config: ConfigurationPlan, kind: str) -> DeepSupervisionLoss:
        """The training loss over the outputs of :meth:`forward` (regions and the ignore
        label of ``plans`` included)."""
        ...

    def inference_voxels(
        self, config: ConfigurationPlan, shape: Sequence[int], step_fraction: float
    ) -> int:
        """Output voxels the final validation computes for a case of ``shape`` (Z, Y, X)."""
        ...


def confusion_counts(
    logits: torch.Tensor,
    target: torch.Tensor,
    num_classes: int,
    regions: Sequence[Sequence[int]] = (),
    ignore_label: int | None = None,
) -> torch.Tensor:
    """True positives, false positives and false negatives per foreground class or region.

    Args:
        logits: B×K×… network output.
        target: B×… int64 labels.
        num_classes: K.
        regions: Region-based outputs: the label values of each output's region (a voxel
            is predicted in region r where its logit is > 0, i.e. sigmoid > 0.5).
        ignore_label: Target value whose voxels are not counted.

    Returns:
        int64 tensor of (tp, fp, fn): (K - 1)×3 for classes 1..K-1, or R×3 for the
        regions; on the CPU.
    """
    valid = None if ignore_label is None else target != ignore_label
    if regions:
        predicted = logits > 0
        reference = region_targets(target, regions) > 0
        if valid is not None:
            predicted = predicted & valid[:, None]
            reference = reference & valid[:, None]
        dims = [0, *range(2, logits.dim())]
        tp = (predicted & reference).sum(dims)
        fp = (predicted & ~reference).sum(dims)
        fn = (~predicted & reference).sum(dims)
        return torch.stack((tp, fp, fn), dim=1).to(torch.int64).cpu()
    prediction = logits.argmax(1)
    if valid is not None:
        target, prediction = target[valid], prediction[valid]
    pairs = (target.reshape(-1) * num_classes + prediction.reshape(-1)).to(torch.int64)
    matrix = torch.bincount(pairs, minlength=num_classes * num_classes)
    matrix = matrix.reshape(num_classes, num_classes).cpu()  # rows: reference, cols: prediction
    tp = matrix.diagonal()
    fp = matrix.sum(0) - tp
    fn = matrix.sum(1) - tp
    return torch.stack((tp, fp, fn), dim=1)[1:]
