"""The cascade's extra input: the first stage's segmentation, one channel per foreground label.

A cascade configuration (``ConfigurationPlan.previous_stage``, nnU-Net's
``3d_cascade_fullres``) sees the image channels followed by the one-hot segmentation of its
first stage (``unet3d_lowres``), one channel per foreground label (background is implied).
The first stage's label map in the original geometry -- in training a validation output
of the fold where the case was held out, in prediction the first stage's fold ensemble --
is brought onto the cascade's preprocessed grid exactly as a reference label is: cropped to
the case's crop box and resampled to its target spacing without inventing values
(:func:`stage_on_grid`). Training, its final validation and ``autoseg predict`` share
these functions, so the second stage sees the same kind of input in all three.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from autoseg.preprocessing.crop import crop_to_box
from autoseg.preprocessing.label_resampling import resample_label
from autoseg.preprocessing.store import CaseProperties

__all__ = ["stage_on_grid", "stage_one_hot", "with_stage_channels"]


def stage_on_grid(
    labels: np.ndarray, properties: CaseProperties, *, anisotropy_threshold: float
) -> np.ndarray:
    """A first-stage label map Z×Y×X in the original geometry, on the case's preprocessed
    grid (``properties.shape_after_resample``), as uint8 (int16 beyond 255 labels).

    Raises:
        ValueError: if ``labels`` does not have the original shape.
    """
    if tuple(labels.shape) != tuple(properties.original.shape):
        raise ValueError(
            f"first-stage labels of shape {labels.shape} differ from the case's original "
            f"shape {properties.original.shape}"
        )
    cropped = crop_to_box(np.asarray(labels), properties.crop_box)
    dtype = np.uint8 if int(cropped.max(initial=0)) < 256 else np.int16
    resampled = resample_label(
        cropped.astype(dtype, copy=False),
        properties.original.spacing,
        properties.target_spacing,
        anisotropy_threshold=anisotropy_threshold,
        new_shape=properties.shape_after_resample,
    )
    return np.asarray(resampled, dtype=dtype)


def stage_one_hot(labels: np.ndarray, foreground: Sequence[int]) -> np.ndarray:
    """float32 F×… with channel i = (labels == foreground[i])."""
    out = np.empty((len(foreground), *labels.shape), dtype=np.float32)
    for i, value in enumerate(foreground):
        np.equal(labels, value, out=out[i], casting="unsafe")
    return out


def with_stage_channels(
    image: np.ndarray, labels: np.ndarray, foreground: Sequence[int]
) -> np.ndarray:
    """The cascade's input: image C×Z×Y×X, then the one-hot first-stage labels (float32).

    Raises:
        ValueError: if the label map is not on the image's grid.
    """
    if tuple(labels.shape) != tuple(image.shape[1:]):
        raise ValueError(
            f"first-stage labels of shape {labels.shape} are not on the image's grid "
            f"{image.shape[1:]}"
        )
    return np.concatenate(
        [np.asarray(image, dtype=np.float32), stage_one_hot(labels, foreground)], axis=0
    )
