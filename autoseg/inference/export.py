"""Export predictions to the original image geometry: resample, undo the crop, argmax, write.

Probabilities come in on the preprocessed grid (K×Z×Y×X at the plan's target spacing, inside
the crop box). They are resampled (linear; the anisotropy rule keeps a coarse axis at
nearest neighbour) to *exactly* the crop box's shape, placed back into the full original
shape (outside the box: background probability 1), turned into labels, and written with the
input's header copied bit for bit, so the label map has the input's shape, affine,
orientation and header geometry exactly.

Region-based training (``regions_class_order`` given): the K channels are region sigmoids;
each is resampled, thresholded at 0.5 and painted with its label in that order, later
regions over earlier ones (as :func:`~autoseg.data.labels.labels_from_probabilities`), so
the output is an ordinary label map; outside the crop box and the ROI every region is 0.

RAM stays bounded: without saved probabilities the argmax is taken class by class while
resampling (:func:`~autoseg.preprocessing.resample_probabilities_to_labels`), so a 10-class
512×512×300 CT never holds a K×original float stack (measured: 1.1 GB above the input, 3.5
float32 output volumes; bench/predict_speed.py). Only ``--save-probabilities`` builds one,
in float16, class by class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from autoseg.atomic import atomic_path
from autoseg.data.geometry import Geometry
from autoseg.data.imageio import write_image
from autoseg.ensembling.postprocessing import apply_postprocessing
from autoseg.names import inside
from autoseg.preprocessing.crop import uncrop
from autoseg.preprocessing.resample import (
    resample_probabilities,
    resample_probabilities_to_labels,
)
from autoseg.preprocessing.store import CaseProperties

__all__ = [
    "export_prediction",
    "original_labels",
    "probabilities_to_original",
    "save_probabilities",
    "write_feature_maps",
]


def _check(probabilities: np.ndarray, properties: CaseProperties) -> None:
    expected = tuple(properties.shape_after_resample)
    if probabilities.ndim != 4 or tuple(probabilities.shape[1:]) != expected:
        raise ValueError(
            f"probabilities must be K×Z×Y×X on the preprocessed grid {expected} of case "
            f"{properties.case_id!r}, got shape {probabilities.shape}"
        )


def _label_dtype(
    num_classes: int, regions_class_order: Sequence[int] | None = None
) -> type[np.integer]:
    if regions_class_order is not None:
        return np.uint8 if max(regions_class_order, default=0) < 256 else np.int16
    return np.uint8 if num_classes <= 256 else np.int16


def probabilities_to_original(
    probabilities: np.ndarray,
    properties: CaseProperties,
    *,
    roi: np.ndarray | None = None,
    anisotropy_threshold: float = 3.0,
    dtype: type[np.floating] = np.float16,
    regions_class_order: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities on the full original grid, and the label map, class by class.

    Each class is resampled on its own into a preallocated ``dtype`` stack (float16 by
    default: the stored form), while the label map is the running argmax over the float32
    resampled classes, exactly as :func:`~autoseg.preprocessing.resample_probabilities_to_labels`
    computes it (ties go to the lower class). Peak RAM: the input, the K×original ``dtype``
    stack and about four float32 original-sized arrays.

    Args:
        probabilities: K×Z×Y×X on the preprocessed grid (``properties.shape_after_resample``).
        properties: The case's properties (original geometry, crop box, target spacing).
        roi: Optional ROI mask Z×Y×X in the original geometry; outside it background is 1.
        anisotropy_threshold: The plan's anisotropy threshold (chooses the resampling rule).
        dtype: Floating dtype of the returned probabilities.
        regions_class_order: The channels are regions painting these labels (see the
            module docstring); None: softmax classes.

    Returns:
        ``(probabilities, labels)``: K×(original shape) with background 1 and every other
        class 0 (every region 0) outside the crop box and the ROI; labels Z×Y×X (0 there).
    """
    _check(probabilities, properties)
    num_classes = probabilities.shape[0]
    regions = regions_class_order is not None
    (z0, z1), (y0, y1), (x0, x1) = properties.crop_box
    full = np.zeros((num_classes, *properties.original.shape), dtype=dtype)
    if not regions:
        full[0] = 1.0
    best = np.full(properties.shape_after_crop, -np.inf, dtype=np.float32)
    cropped = np.zeros(
        properties.shape_after_crop, dtype=_label_dtype(num_classes, regions_class_order)
    )
    for k in range(num_classes):
        resampled = resample_probabilities(
            probabilities[k : k + 1],
            properties.target_spacing,
            properties.original.spacing,
            new_shape=properties.shape_after_crop,
            anisotropy_threshold=anisotropy_threshold,
        )[0]
        if regions_class_order is not None:
            cropped[resampled > 0.5] = regions_class_order[k]
        else:
            better = resampled > best
            np.copyto(best, resampled, where=better)
            cropped[better] = k
        full[k, z0:z1, y0:y1, x0:x1] = resampled
    del best
    labels = uncrop(cropped, properties.crop_box, properties.original.shape)
    if roi is not None:
        outside = ~np.asarray(roi, dtype=bool)
        labels[outside] = 0
        for k in range(num_classes):
            np.copyto(full[k], 1.0 if k == 0 and not regions else 0.0, where=outside)
    return full, labels


def _labels_bounded(
    probabilities: np.ndarray,
    properties: CaseProperties,
    anisotropy_threshold: float,
    regions_class_order: Sequence[int] | None = None,
) -> np.ndarray:
    """Labels on the original grid, resampling one class (or region) at a time (bounded
    RAM)."""
    if regions_class_order is not None:
        return _painted_bounded(
            probabilities, properties, anisotropy_threshold, regions_class_order
        )
    cropped = resample_probabilities_to_labels(
        probabilities,
        properties.target_spacing,
        properties.original.spacing,
        new_shape=properties.shape_after_crop,
        anisotropy_threshold=anisotropy_threshold,
        chunk_classes=1,
    )
    dtype = _label_dtype(probabilities.shape[0])
    return uncrop(cropped.astype(dtype, copy=False), properties.crop_box, properties.original.shape)


def _painted_bounded(
    probabilities: np.ndarray,
    properties: CaseProperties,
    anisotropy_threshold: float,
    regions_class_order: Sequence[int],
) -> np.ndarray:
    """Region labels on the original grid: each region resampled, thresholded at 0.5 and
    painted in order, one region at a time."""
    cropped = np.zeros(
        properties.shape_after_crop,
        dtype=_label_dtype(probabilities.shape[0], regions_class_order),
    )
    for k, value in enumerate(regions_class_order):
        resampled = resample_probabilities(
            probabilities[k : k + 1],
            properties.target_spacing,
            properties.original.spacing,
            new_shape=properties.shape_after_crop,
            anisotropy_threshold=anisotropy_threshold,
        )[0]
        cropped[resampled > 0.5] = value
    return uncrop(cropped, properties.crop_box, properties.original.shape)


def original_labels(
    probabilities: np.ndarray,
    properties: CaseProperties,
    *,
    roi: np.ndarray | None = None,
    anisotropy_threshold: float = 3.0,
    regions_class_order: Sequence[int] | None = None,
) -> np.ndarray:
    """The label map :func:`export_prediction` would write (without postprocessing), in the
    original geometry, without writing it (the cascade's first stage uses it)."""
    _check(probabilities, properties)
    labels = _labels_bounded(probabilities, properties, anisotropy_threshold, regions_class_order)
    if roi is not None:
        labels[~np.asarray(roi, dtype=bool)] = 0
    return labels


def save_probabilities(path: Path, probabilities: np.ndarray) -> None:
    """Write ``probabilities`` as a compressed ``.npz`` (key ``probabilities``, float16),
    atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, probabilities=probabilities.astype(np.float16, copy=False))


def export_prediction(
    probabilities: np.ndarray,
    properties: CaseProperties,
    out_path: Path,
    *,
    reference: Path,
    probabilities_path: Path | None = None,
    postprocessing: Mapping[int, bool] | None = None,
    roi: np.ndarray | None = None,
    anisotropy_threshold: float = 3.0,
    regions_class_order: Sequence[int] | None = None,
) -> np.ndarray:
    """Write a prediction as a label map in the original geometry (and optionally its
    probabilities).

    Steps: resample to exactly the crop box's shape, undo the crop (background outside),
    argmax, zero outside ``roi``, apply the postprocessing rule, write atomically with the
    header of ``reference``.

    Args:
        probabilities: float K×Z×Y×X softmax on the preprocessed grid
            (``properties.shape_after_resample``); class k is label value k.
        properties: The case's :class:`~autoseg.preprocessing.store.CaseProperties`.
        out_path: Label map to write (its ending picks the format, e.g. ``.nii.gz``).
        reference: The input image whose header is copied (the case's first channel).
        probabilities_path: If given, also write the original-geometry probabilities there
            (``.npz``, key ``probabilities``, float16 K×Z×Y×X, full original shape; outside
            the crop box and the ROI background is 1). This path holds a K×original float16
            stack in RAM; the labels are the same either way.
        postprocessing: Label -> keep only its largest connected component (best.json).
        roi: ROI mask Z×Y×X in the original geometry; labels outside it are 0.
        anisotropy_threshold: The plan's ``heuristics.anisotropy_threshold``.
        regions_class_order: Region-based training: the probabilities are region
            sigmoids, thresholded at 0.5 and painted with these labels in order.

    Returns:
        The label map written, Z×Y×X in the original geometry (uint8 for <= 256 classes).

    Raises:
        ValueError: if the probabilities do not lie on the case's preprocessed grid, or the
            ROI's shape differs from the original shape.
    """
    _check(probabilities, properties)
    if roi is not None and tuple(roi.shape) != tuple(properties.original.shape):
        raise ValueError(
            f"ROI shape {roi.shape} differs from the original shape {properties.original.shape}"
        )
    if probabilities_path is not None:
        full, labels = probabilities_to_original(
            probabilities,
            properties,
            roi=roi,
            anisotropy_threshold=anisotropy_threshold,
            regions_class_order=regions_class_order,
        )
        save_probabilities(probabilities_path, full)
        del full
    else:
        labels = _labels_bounded(
            probabilities, properties, anisotropy_threshold, regions_class_order
        )
        if roi is not None:
            labels[~np.asarray(roi, dtype=bool)] = 0
    if postprocessing:
        labels = apply_postprocessing(labels, postprocessing)
    write_image(out_path, labels, properties.original, reference=reference)
    return labels


def write_feature_maps(
    features: Mapping[str, np.ndarray],
    properties: CaseProperties,
    out_dir: Path,
    case_id: str,
    *,
    anisotropy_threshold: float = 3.0,
) -> list[Path]:
    """Write each F×Z×Y×X feature-map stack as ``<case>_features_<name>.nii.gz`` (4D).

    Each stack (on the preprocessed grid) is resampled linearly to the crop box, placed in
    the original shape (0 outside the box), and written as float32 with the channels along
    the 4th axis and the original geometry's affine (qform and sform, code 1): voxel
    (i, j, k) of every channel lies where voxel (i, j, k) of the input does.

    Returns:
        The files written.
    """
    written = []
    for name, stack in features.items():
        _check(stack, properties)
        resampled = resample_probabilities(
            stack,
            properties.target_spacing,
            properties.original.spacing,
            new_shape=properties.shape_after_crop,
            anisotropy_threshold=anisotropy_threshold,
        )
        full = uncrop(resampled, properties.crop_box, properties.original.shape, fill=0.0)
        path = inside(out_dir, case_id, f"_features_{name}.nii.gz")
        _write_nifti_4d(path, full, properties.original)
        written.append(path)
    return written


def _write_nifti_4d(path: Path, stack: np.ndarray, geometry: Geometry) -> None:
    """Write F×Z×Y×X as a NIfTI of shape X×Y×Z×F with the geometry's affine, atomically."""
    data = np.ascontiguousarray(stack.transpose(3, 2, 1, 0), dtype=np.float32)
    image = nib.Nifti1Image(data, geometry.affine)
    image.header.set_sform(geometry.affine, code=1)
    image.header.set_qform(geometry.affine, code=1)
    with atomic_path(path) as tmp:
        nib.save(image, str(tmp))
