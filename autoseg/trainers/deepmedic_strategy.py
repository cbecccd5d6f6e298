"""Training behaviour of DeepMedic.

Each sample is a box around a class-balanced centre (:class:`SegmentSampler`), symmetric
about the output segment and holding every pathway's input (so mirroring and rotation about
the box centre keep the segment in place), with the output segment's labels. The spatial
augmentation is applied while the box is read (linear interpolation: the box is ~1000x the
output segment's voxels and mostly feeds the block-averaged subsampled pathways, where cubic
splines would cost much and change little); the box is mirrored, :class:`PathwayInputs` cuts
each pathway's input with :func:`~autoseg.networks.deepmedic.extract_pathway_inputs` (the
single source of alignment), and the intensity augmentations then act on each pathway's
input, with the same random draws for all pathways of a sample
(:class:`~autoseg.trainers.augmentation.PerPathway`).
The loss is computed on the output segment only: the plan's (Dice + CE by default, the Dice
statistics summed over the batch, the segments being small; cross-entropy for plans that
name no loss); for region-based training binary cross-entropy + Dice per region (one sigmoid
output each), and ignore-label voxels take no part in any term.

Defaults: Nesterov momentum 0.9 when the plan's optimiser is SGD (the plan chooses
optimiser, learning rate and loss; nnU-Net's U-Net momentum is 0.99). DeepMedic trains a
batch-normalised network with dropout on small segments, and its own optimiser uses moderate
momentum (RMSProp, momentum 0.6, lr 1e-3); on the two-class phantom of
bench/train_accuracy.py (3-4 minute CPU runs) momentum 0.9 and 0.99 reached the same
validation Dice (0.921 and 0.917), so the more conservative value is the default.
``--momentum``/``--lr``/``--loss`` override them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from batchgenerators.transforms.abstract_transforms import AbstractTransform, Compose

from autoseg.errors import ConfigError
from autoseg.inference.deepmedic_tiling import tiled_voxels
from autoseg.networks import DeepMedicConfig
from autoseg.networks.deepmedic_geometry import extract_pathway_inputs, input_boxes
from autoseg.planner.plans import ConfigurationPlan, Plans
from autoseg.trainers.augmentation import build_pathway_transforms
from autoseg.trainers.losses import DeepSupervisionLoss, SegmentationLoss
from autoseg.trainers.sampling import SegmentSampler
from autoseg.trainers.spatial import SpatialParams
from autoseg.trainers.strategy import FamilyDefaults, LoaderSpec
from autoseg.typing import Shape3

__all__ = ["DeepMedicStrategy", "PathwayInputs", "segment_box"]


def _deepmedic(config: ConfigurationPlan) -> DeepMedicConfig:
    if not isinstance(config.network, DeepMedicConfig):
        raise ConfigError(f"configuration {config.name!r} is not DeepMedic ({config.network.kind})")
    return config.network


def segment_box(config: DeepMedicConfig, output_shape: Sequence[int]) -> tuple[Shape3, Shape3]:
    """The box symmetric about an output segment that holds every pathway's input.

    Returns:
        ``(box_shape, output_offset)``: the box (Z, Y, X) and where the output segment starts
        inside it (the margin on each side).
    """
    margins = [0, 0, 0]
    for start, shape in input_boxes(config, (0, 0, 0), output_shape):
        for a in range(3):
            after = start[a] + shape[a] - int(output_shape[a])
            margins[a] = max(margins[a], -start[a], after)
    box = tuple(int(n) + 2 * m for n, m in zip(output_shape, margins))
    return (box[0], box[1], box[2]), (margins[0], margins[1], margins[2])


class PathwayInputs(AbstractTransform):  # type: ignore[misc]
    """Replace the box batch by pathway inputs and output-segment targets.

    Input keys: ``data`` (B×C×box) and ``seg`` (B×1×output: the output segment's labels).
    Output keys: ``inputs`` (one float32 B×C×… array per pathway, normal first) and
    ``target`` (int64 B×output labels).
    """

    def __init__(self, config: DeepMedicConfig, offset: Sequence[int], output: Sequence[int]):
        self.config = config
        self.offset = tuple(int(v) for v in offset)
        self.output = tuple(int(v) for v in output)

    def __call__(self, **batch: Any) -> dict[str, Any]:
        data, seg = batch.pop("data"), batch.pop("seg")
        per_sample = [
            extract_pathway_inputs(np.asarray(d, np.float32), self.offset, self.output, self.config)
            for d in data
        ]
        batch["inputs"] = [np.stack(p) for p in zip(*per_sample)]
        batch["target"] = np.rint(seg[:, 0]).astype(np.int64)
        return batch


class DeepMedicStrategy:
    """The DeepMedic family's :class:`~autoseg.trainers.strategy.TrainingStrategy`."""

    kind = "deepmedic"
    defaults = FamilyDefaults(momentum=0.9, loss="ce")

    def _sampler(
        self, config: ConfigurationPlan, folder: Path, ids: Sequence[str], train: bool
    ) -> SegmentSampler:
        box, offset = segment_box(_deepmedic(config), config.patch_size)
        spatial = SpatialParams.from_plan(config.augmentation) if train else None
        return SegmentSampler(
            folder, ids, config.batch_size, box, offset, config.patch_size, spatial
        )

    def train_loader(
        self, plans: Plans, config: ConfigurationPlan, folder: Path, case_ids: Sequence[str]
    ) -> LoaderSpec:
        network = _deepmedic(config)
        _, offset = segment_box(network, config.patch_size)
        extract = PathwayInputs(network, offset, config.patch_size)
        transforms = build_pathway_transforms(config.augmentation, extract)
        return LoaderSpec(self._sampler(config, folder, case_ids, True), transforms)

    def val_loader(
        self, plans: Plans, config: ConfigurationPlan, folder: Path, case_ids: Sequence[str]
    ) -> LoaderSpec:
        network = _deepmedic(config)
        _, offset = segment_box(network, config.patch_size)
        finish = Compose([PathwayInputs(network, offset, config.patch_size)])
        return LoaderSpec(self._sampler(config, folder, case_ids, False), finish)

    def to_device(
        self, batch: dict[str, Any], config: ConfigurationPlan, device: torch.device
    ) -> tuple[Any, list[torch.Tensor]]:
        non_blocking = device.type == "cuda"
        inputs = [
            torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(
                device, non_blocking=non_blocking
            )
            for x in batch["inputs"]
        ]
        target = torch.from_numpy(np.asarray(batch["target"], dtype=np.int64))
        return inputs, [target.to(device, non_blocking=non_blocking)]

    def forward(self, network: torch.nn.Module, inputs: Any) -> list[torch.Tensor]:
        return [network(inputs)]

    def make_loss(self, plans: Plans, config: ConfigurationPlan, kind: str) -> DeepSupervisionLoss:
        loss = SegmentationLoss(
            kind,
            batch_dice=True,
            regions=plans.training_regions,
            ignore_label=plans.ignore_label,
        )
        return DeepSupervisionLoss(loss, (1.0,))

    def inference_voxels(
        self, config: ConfigurationPlan, shape: Sequence[int], step_fraction: float
    ) -> int:
        # The planned segment, not the tile prediction uses (tile_output_shape, then
        # balanced_tile): the budget's estimate as it has always been made.
        return tiled_voxels(shape, config.inference_patch_size)
