"""Preprocess one case exactly as training and prediction need it (pure: arrays in, arrays out).

Crop to the non-zero (or ROI) bounding box, normalise per channel (statistics inside the
non-zero / ROI mask where the plan says so), then resample image (third order), labels and
ROI (never inventing values) to the target spacing, with the anisotropy rule for a much
coarser axis.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

import numpy as np

from autoseg.artefacts import text_digest
from autoseg.data.case_io import CaseArrays
from autoseg.errors import DatasetError
from autoseg.preprocessing.crop import crop_to_box, nonzero_bounding_box, nonzero_mask
from autoseg.preprocessing.normalize import ChannelNormalization, normalize_image
from autoseg.preprocessing.resample import compute_new_shape, resample_image, resample_label
from autoseg.preprocessing.store import CaseProperties, PreprocessedCase, sample_class_locations
from autoseg.typing import Spacing3

__all__ = ["MAX_RESAMPLED_VOXELS", "PreprocessingSettings", "preprocess_arrays"]


@dataclass(frozen=True)
class PreprocessingSettings:
    """Everything that determines a configuration's preprocessed data (built from a plan by
    :func:`autoseg.planner.plans.preprocessing_settings`).

    Attributes:
        data_identifier: Folder name of the preprocessed data (spacing + normalisation).
        target_spacing: Spacing (mm, Z, Y, X) the cases are resampled to.
        normalization: One scheme per channel.
        use_roi_mask: Crop to the ROI mask and keep it with the case.
        anisotropy_threshold: Spacing ratio above which the coarse axis is resampled apart.
        label_values: Every class's label value, sorted (background 0 first; the ignore
            label, which gets no sampling locations, left out).
    """

    data_identifier: str
    target_spacing: Spacing3
    normalization: tuple[ChannelNormalization, ...]
    use_roi_mask: bool
    anisotropy_threshold: float
    label_values: tuple[int, ...]

    def digest(self) -> str:
        """SHA-256 of the settings (changes whenever the preprocessed data would)."""
        return text_digest(
            json.dumps(
                [
                    self.data_identifier,
                    list(self.target_spacing),
                    [n.to_dict() for n in self.normalization],
                    self.use_roi_mask,
                    self.anisotropy_threshold,
                    list(self.label_values),
                ]
            )
        )


MAX_RESAMPLED_VOXELS = 2**31
"""Refuse to resample a case to more voxels per channel than this (8 GiB of float32): a
spacing far from the others' (a broken header) would otherwise exhaust the memory."""


def _check_size(
    case_id: str, spacing: Spacing3, target: Spacing3, new_shape: tuple[int, ...]
) -> None:
    voxels = math.prod(int(v) for v in new_shape)
    if voxels <= MAX_RESAMPLED_VOXELS:
        return
    shown = "x".join(str(int(v)) for v in new_shape)
    raise DatasetError(
        f"resampling from spacing {_mm(spacing)} to the target {_mm(target)} would make a "
        f"{shown} volume ({voxels:.2g} voxels, more than {MAX_RESAMPLED_VOXELS:.2g}); check "
        "this case's spacing in its image header",
        case_id=case_id,
    )


def _mm(spacing: Spacing3) -> str:
    return "(" + ", ".join(f"{float(v):.4g}" for v in spacing) + ") mm"


def preprocess_arrays(
    arrays: CaseArrays, settings: PreprocessingSettings, inputs: dict[str, str] | None = None
) -> PreprocessedCase:
    """Crop, normalise and resample one loaded case.

    Returns:
        The preprocessed case (in memory); ``seg``/``roi`` are None when the case has none.
    """
    roi = arrays.roi if settings.use_roi_mask else None
    box = nonzero_bounding_box(arrays.image, roi)
    image = crop_to_box(arrays.image, box)
    label = crop_to_box(arrays.label, box) if arrays.label is not None else None
    roi = crop_to_box(roi, box) if roi is not None else None
    needs_mask = any(n.use_mask for n in settings.normalization)
    mask = roi if roi is not None else (nonzero_mask(image) if needs_mask else None)
    image = normalize_image(image, settings.normalization, mask)
    spacing = arrays.geometry.spacing
    new_shape = compute_new_shape(image.shape[1:], spacing, settings.target_spacing)
    _check_size(arrays.case_id, spacing, settings.target_spacing, new_shape)
    threshold, target = settings.anisotropy_threshold, settings.target_spacing
    image = resample_image(
        image, spacing, target, anisotropy_threshold=threshold, new_shape=new_shape
    )
    if label is not None:
        label = resample_label(
            label, spacing, target, anisotropy_threshold=threshold, new_shape=new_shape
        )
    if roi is not None:
        roi = resample_label(
            roi.astype(np.uint8),
            spacing,
            target,
            anisotropy_threshold=threshold,
            new_shape=new_shape,
        ).astype(bool)
    seed = int.from_bytes(hashlib.sha256(arrays.case_id.encode()).digest()[:8], "little")
    locations = (
        sample_class_locations(label, settings.label_values, roi, seed) if label is not None else {}
    )
    properties = CaseProperties(
        case_id=arrays.case_id,
        original=arrays.geometry,
        crop_box=box,
        target_spacing=settings.target_spacing,
        shape_after_resample=tuple(int(v) for v in image.shape[1:]),  # type: ignore[arg-type]
        classes_present=tuple(
            int(v) for v in np.unique(label) if v != 0 and int(v) in settings.label_values
        )
        if label is not None
        else (),
        has_roi=roi is not None,
        inputs=inputs or {},
    )
    return PreprocessedCase(properties, image, label, roi, locations)
