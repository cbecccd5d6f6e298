"""Training behaviour of the deep-supervised U-Net.

Patches with foreground oversampling (:class:`~autoseg.trainers.sampling.PatchSampler`),
the shared augmentation, targets downsampled for every deep-supervision output (nearest
neighbour: every ``factor``-th voxel along each axis, the factors being the products of the
strides, as in ``UNetConfig.deep_supervision_scales``), and Dice + cross-entropy with weights
halving per output level (binary cross-entropy + Dice per region for region-based training;
ignore-label voxels left out of every term, at every level; the Dice over the whole batch
where the plan says ``batch_dice``). Momentum as nnU-Net's (0.99, Nesterov) when the plan's
optimiser is SGD (the plan chooses optimiser and learning rate: nnU-Net's SGD at 1e-2 on a
GPU, Adam at 3e-3 on a CPU). On a CPU the channels-last-3d memory format is on by default
(bench/train_speed.py, 2-core CPU: 1.68 against 1.25 iterations/s with two threads, 1.62
against 1.43 with one).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from batchgenerators.transforms.abstract_transforms import AbstractTransform

from autoseg.errors import ConfigError
from autoseg.inference.sliding_window import sliding_window_voxels
from autoseg.networks import UNetConfig
from autoseg.planner.plans import ConfigurationPlan, Plans
from autoseg.trainers.augmentation import build_train_transforms
from autoseg.trainers.losses import DeepSupervisionLoss, SegmentationLoss, deep_supervision_weights
from autoseg.trainers.sampling import PatchSampler
from autoseg.trainers.spatial import SpatialParams
from autoseg.trainers.strategy import FamilyDefaults, LoaderSpec

__all__ = ["UNetStrategy", "supervision_factors"]


def _unet(config: ConfigurationPlan) -> UNetConfig:
    if not isinstance(config.network, UNetConfig):
        raise ConfigError(f"configuration {config.name!r} is not a U-Net ({config.network.kind})")
    return config.network


def supervision_factors(config: UNetConfig) -> tuple[tuple[int, int, int], ...]:
    """Integer downsampling factor (Z, Y, X) of every deep-supervision output."""
    return tuple(
        (round(1 / z), round(1 / y), round(1 / x)) for z, y, x in config.deep_supervision_scales()
    )


class UNetStrategy:
    """The U-Net family's :class:`~autoseg.trainers.strategy.TrainingStrategy`."""

    kind = "unet3d"
    defaults = FamilyDefaults(momentum=0.99, loss="dice_ce", channels_last_on_cpu=True)
    stage_dir: Path | None = None
    """The cascade's first-stage label maps, read beside the labels (None: no first stage)."""

    def _finishing_transforms(self) -> tuple[AbstractTransform, ...]:
        """Batch transforms training appends after the shared augmentation (none here)."""
        return ()

    def _sampler(
        self,
        plans: Plans,
        config: ConfigurationPlan,
        folder: Path,
        case_ids: Sequence[str],
        spatial: SpatialParams | None,
    ) -> PatchSampler:
        return PatchSampler(
            folder,
            case_ids,
            config.batch_size,
            config.patch_size,
            config.foreground_oversample,
            plans.class_sampling_weights,
            spatial,
            stage_dir=self.stage_dir,
        )

    def train_loader(
        self, plans: Plans, config: ConfigurationPlan, folder: Path, case_ids: Sequence[str]
    ) -> LoaderSpec:
        spatial = SpatialParams.from_plan(config.augmentation)
        sampler = self._sampler(plans, config, folder, case_ids, spatial)
        transforms = build_train_transforms(config.augmentation, self._finishing_transforms())
        return LoaderSpec(sampler, transforms)

    def val_loader(
        self, plans: Plans, config: ConfigurationPlan, folder: Path, case_ids: Sequence[str]
    ) -> LoaderSpec:
        return LoaderSpec(self._sampler(plans, config, folder, case_ids, None), None)

    def to_device(
        self, batch: dict[str, Any], config: ConfigurationPlan, device: torch.device
    ) -> tuple[Any, list[torch.Tensor]]:
        non_blocking = device.type == "cuda"
        data = torch.from_numpy(np.ascontiguousarray(batch["data"], dtype=np.float32))
        labels = torch.from_numpy(np.ascontiguousarray(batch["seg"][:, 0])).to(
            device, non_blocking=non_blocking
        )
        labels = labels.round().to(torch.int64) if labels.is_floating_point() else labels.long()
        targets = [
            labels[:, ::fz, ::fy, ::fx] if (fz, fy, fx) != (1, 1, 1) else labels
            for fz, fy, fx in supervision_factors(_unet(config))
        ]
        return data.to(device, non_blocking=non_blocking), targets

    def forward(self, network: torch.nn.Module, inputs: Any) -> list[torch.Tensor]:
        outputs = network(inputs)
        return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]

    def make_loss(self, plans: Plans, config: ConfigurationPlan, kind: str) -> DeepSupervisionLoss:
        outputs = len(_unet(config).deep_supervision_scales())
        loss = SegmentationLoss(
            kind,
            batch_dice=config.batch_dice,
            regions=plans.training_regions,
            ignore_label=plans.ignore_label,
        )
        return DeepSupervisionLoss(loss, deep_supervision_weights(outputs))

    def inference_voxels(
        self, config: ConfigurationPlan, shape: Sequence[int], step_fraction: float
    ) -> int:
        return sliding_window_voxels(shape, config.inference_patch_size, step_fraction)
