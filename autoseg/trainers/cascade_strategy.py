"""Training behaviour of the cascade's second stage (``unet3d_cascade``).

The U-Net's strategy, with the first stage's label map of every patch read beside its labels
(:class:`~autoseg.trainers.sampling.PatchSampler` with a ``stage_dir``: ``seg`` channel 1,
spatially transformed and mirrored with the labels, untouched by the intensity transforms)
and appended to the image as one channel per foreground label when the batch goes to the
device. In training the map is also degraded (random morphology, removed components:
:mod:`autoseg.trainers.cascade_augmentation`), as nnU-Net does, so the second stage learns
to correct its first stage rather than copy it. The first stage's maps are its out-of-fold
predictions (:mod:`autoseg.trainers.previous_stage`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from batchgenerators.transforms.abstract_transforms import AbstractTransform

from autoseg.inference.cascade import stage_one_hot
from autoseg.planner.plans import ConfigurationPlan
from autoseg.trainers.cascade_augmentation import PerturbFirstStage
from autoseg.trainers.unet_strategy import UNetStrategy

__all__ = ["CascadeStrategy"]


class CascadeStrategy(UNetStrategy):
    """:class:`UNetStrategy` with the first stage's segmentation as extra input channels.

    Args:
        stage_dir: Folder of the first stage's label maps on the cascade's grid.
        foreground: The foreground labels, one input channel each, in order.
    """

    def __init__(self, stage_dir: Path, foreground: Sequence[int]) -> None:
        self.stage_dir: Path | None = Path(stage_dir)
        self.foreground = tuple(int(v) for v in foreground)

    def _finishing_transforms(self) -> tuple[AbstractTransform, ...]:
        return (PerturbFirstStage(),)

    def to_device(
        self, batch: dict[str, Any], config: ConfigurationPlan, device: torch.device
    ) -> tuple[Any, list[torch.Tensor]]:
        stage = np.asarray(batch["seg"][:, 1])
        one_hot = np.stack([stage_one_hot(s, self.foreground) for s in stage])
        merged = dict(batch)
        merged["data"] = np.concatenate([np.asarray(batch["data"], np.float32), one_hot], axis=1)
        merged["seg"] = batch["seg"][:, :1]
        return super().to_device(merged, config, device)
