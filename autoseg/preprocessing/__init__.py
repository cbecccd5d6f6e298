"""Preprocessing primitives: crop to the non-zero box, resample, normalise (pure functions).

Arrays are C×Z×Y×X (label maps Z×Y×X); spacings are in mm along (Z, Y, X).
"""

from __future__ import annotations

from autoseg.preprocessing.crop import (
    box_shape,
    crop_to_box,
    mask_bounding_box,
    nonzero_bounding_box,
    nonzero_mask,
    uncrop,
)
from autoseg.preprocessing.normalize import (
    ChannelNormalization,
    normalize_image,
    scheme_for_channel_name,
)
from autoseg.preprocessing.resample import (
    compute_new_shape,
    is_anisotropic,
    resample_image,
    resample_label,
    resample_probabilities,
    resample_probabilities_to_labels,
    separate_axis,
)

__all__ = [
    "ChannelNormalization",
    "box_shape",
    "compute_new_shape",
    "crop_to_box",
    "is_anisotropic",
    "mask_bounding_box",
    "nonzero_bounding_box",
    "nonzero_mask",
    "normalize_image",
    "resample_image",
    "resample_label",
    "resample_probabilities",
    "resample_probabilities_to_labels",
    "scheme_for_channel_name",
    "separate_axis",
    "uncrop",
]
