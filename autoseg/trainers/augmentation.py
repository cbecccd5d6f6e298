"""The batchgenerators augmentation pipeline, built from a plan's :class:`AugmentationPlan`.

Same pipeline for both network families, in nnU-Net's order. The spatial part (rotation,
scaling, optional elastic deformation) is applied while samples are read
(:mod:`autoseg.trainers.spatial`, built on batchgenerators' coordinate functions); the
transforms here follow it on the batch: Gaussian noise, Gaussian blur, multiplicative
brightness, contrast, low-resolution simulation (never along the coarse axis of in-plane
augmentation), gamma (also on the inverted image, p = 0.1), and mirroring along the plan's
axes (each with probability 0.5). Probabilities are per sample. Arrays are B×C×Z×Y×X.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from batchgenerators.transforms.abstract_transforms import AbstractTransform, Compose
from batchgenerators.transforms.color_transforms import (
    BrightnessMultiplicativeTransform,
    ContrastAugmentationTransform,
    GammaTransform,
)
from batchgenerators.transforms.noise_transforms import (
    GaussianBlurTransform,
    GaussianNoiseTransform,
)
from batchgenerators.transforms.resample_transforms import SimulateLowResolutionTransform
from batchgenerators.transforms.spatial_transforms import MirrorTransform

from autoseg.planner.plans import AugmentationPlan
from autoseg.trainers.spatial import SpatialParams

__all__ = ["PerPathway", "build_pathway_transforms", "build_train_transforms"]


def _intensity(aug: AugmentationPlan, order: int) -> list[AbstractTransform]:
    axis = SpatialParams.from_plan(aug).in_plane_axis
    candidates: list[tuple[float, AbstractTransform]] = [
        (aug.p_noise, GaussianNoiseTransform(tuple(aug.noise_variance), p_per_sample=aug.p_noise)),
        (
            aug.p_blur,
            GaussianBlurTransform(
                tuple(aug.blur_sigma), True, p_per_sample=aug.p_blur, p_per_channel=0.5
            ),
        ),
        (
            aug.p_brightness,
            BrightnessMultiplicativeTransform(
                tuple(aug.brightness_range), p_per_sample=aug.p_brightness
            ),
        ),
        (
            aug.p_contrast,
            ContrastAugmentationTransform(tuple(aug.contrast_range), p_per_sample=aug.p_contrast),
        ),
        (
            aug.p_low_resolution,
            SimulateLowResolutionTransform(
                tuple(aug.low_resolution_zoom),
                per_channel=True,
                p_per_channel=0.5,
                order_downsample=0,
                order_upsample=order,
                p_per_sample=aug.p_low_resolution,
                ignore_axes=None if axis is None else (axis,),
            ),
        ),
        (
            0.1 if aug.p_gamma > 0 else 0.0,
            GammaTransform(tuple(aug.gamma_range), True, True, retain_stats=True, p_per_sample=0.1),
        ),
        (
            aug.p_gamma,
            GammaTransform(
                tuple(aug.gamma_range), False, True, retain_stats=True, p_per_sample=aug.p_gamma
            ),
        ),
    ]
    return [t for p, t in candidates if p > 0]


def _mirror(aug: AugmentationPlan) -> list[AbstractTransform]:
    return [MirrorTransform(tuple(aug.mirror_axes))] if aug.mirror_axes else []


def build_train_transforms(
    aug: AugmentationPlan, finish: Sequence[AbstractTransform] = (), *, order: int = 1
) -> Compose:
    """The batch transforms of training (after the spatial augmentation of the sampler):
    intensity transforms, mirroring, then ``finish``.

    Args:
        aug: The plan's augmentation parameters.
        finish: Transforms appended at the end.
        order: Spline order of the low-resolution simulation's upsampling (1 = linear).
    """
    return Compose([*_intensity(aug, order), *_mirror(aug), *finish])


def build_pathway_transforms(
    aug: AugmentationPlan, extract: AbstractTransform, *, order: int = 1
) -> Compose:
    """DeepMedic's batch transforms: mirroring of the whole box, ``extract`` (the pathway
    inputs), then the intensity transforms on each pathway's (much smaller) input with the
    same random draws for every pathway of a sample (:class:`PerPathway`)."""
    return Compose([*_mirror(aug), extract, PerPathway(Compose(_intensity(aug, order)))])


class PerPathway(AbstractTransform):  # type: ignore[misc]
    """Apply ``transform`` to each array of ``inputs`` (one per pathway) with the same random
    state, so a sample's pathways get the same gamma, contrast, noise level, ...

    The intensity transforms cost in proportion to the voxels they touch; on DeepMedic's box
    (every pathway's context, ~1000x the output segment) they dominated data loading.
    """

    def __init__(self, transform: AbstractTransform) -> None:
        self.transform = transform

    def __call__(self, **batch: Any) -> dict[str, Any]:
        state = np.random.get_state()
        outputs = []
        for array in batch["inputs"]:
            np.random.set_state(state)
            outputs.append(self.transform(data=array)["data"])
        batch["inputs"] = outputs
        return batch
