"""Segmentation metrics on boolean masks with physical spacing (pure numpy/scipy).

Masks are boolean arrays indexed ``[z, y, x]``; ``spacing_mm`` is the voxel size in mm along
(Z, Y, X). Distances are in mm, volumes in ml (1 ml = 1000 mm³).

Surfaces. HD95 uses the *boundary voxels* of a mask (:mod:`autoseg.evaluation.surface`):
mask voxels with at least one face neighbour (6-neighbourhood) outside the mask; voxels on
the image border count as boundary (outside the image is background). Surface distances
are Euclidean distances in mm between voxel centres, from each boundary voxel of one mask
to the nearest boundary voxel of the other (``scipy.ndimage.distance_transform_edt`` with
``sampling=spacing_mm``), as MONAI's ``compute_hausdorff_distance`` does. The NSD uses
*surfels* weighted by their area (:mod:`autoseg.evaluation.surfels`), the published
definition (DeepMind's ``surface-distance``, MONAI's ``compute_surface_dice`` with
``use_subvoxels=True``). Both are computed on the bounding box of pred ∪ ref: every voxel
outside it is background in both masks, so the results equal the full-image ones exactly,
at a fraction of the cost; boxes above 2 million voxels switch to an exact k-d tree search.

- **HD95** is symmetric: the larger of the two directed 95th percentiles (numpy's linear
  interpolation), ``max(P95(d(∂P→∂R)), P95(d(∂R→∂P)))``.
- **NSD** (normalised surface Dice at tolerance τ mm), with ``S_P``, ``S_R`` the surfels
  and ``a(s)`` their areas: ``(Σ_{s∈S_P, d(s,S_R)≤τ} a(s) + Σ_{s∈S_R, d(s,S_P)≤τ} a(s)) /
  (Σ_{S_P} a + Σ_{S_R} a)``.
- :func:`boundary_voxel_nsd` is the older count of boundary voxels within τ (every voxel
  weighs the same, whatever its share of the surface); it is not reported in tables and
  differs a lot from the NSD on anisotropic images.

Empty masks (the documented convention, also in docs/evaluation.md):

============================  =====  =====  =====================  =====  ==============
case                          Dice   IoU    HD95 (mm)              NSD    volume diff.
============================  =====  =====  =====================  =====  ==============
both empty                    NaN    NaN    NaN                    NaN    0
one empty, the other not      0      0      image diagonal in mm   0      signed, finite
============================  =====  =====  =====================  =====  ==============

NaN values are left out of means and counted separately by
:func:`autoseg.evaluation.summary.summarize`. The image diagonal is
``sqrt(sum((shape * spacing_mm)²))``, larger than any distance inside the image, so a missed
or hallucinated structure scores worse than any real prediction while staying finite (JSON).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from autoseg.evaluation.surface import check_masks, check_spacing, directed_surface_distances
from autoseg.evaluation.surfels import surface_dice_from_surfels, surfel_distances
from autoseg.typing import Spacing3

__all__ = [
    "METRIC_NAMES",
    "ROW_KEYS",
    "boundary_voxel_nsd",
    "compute_case_metrics",
    "dice",
    "directed_surface_distances",
    "hd95",
    "image_diagonal_mm",
    "iou",
    "normalized_surface_dice",
    "volume_difference_ml",
]

METRIC_NAMES: tuple[str, ...] = ("dice", "iou", "hd95_mm", "nsd", "volume_difference_ml")
"""Metric columns of a row of :func:`compute_case_metrics`."""

ROW_KEYS: tuple[str, ...] = (
    "target",
    "kind",
    "label_values",
    *METRIC_NAMES,
    "pred_voxels",
    "ref_voxels",
    "pred_volume_ml",
    "ref_volume_ml",
)
"""Keys of a row of :func:`compute_case_metrics`, in order."""

_TIE_MM = 1e-9
"""Slack of the ``distance <= tolerance`` test, absorbing floating-point rounding."""


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice coefficient ``2|P∩R| / (|P| + |R|)`` of two boolean masks (Z, Y, X).

    Returns:
        A value in [0, 1]; NaN when both masks are empty.

    Raises:
        ValueError: if the masks are not 3D arrays of one shape.
    """
    pred, ref = check_masks(pred, ref)
    total = int(np.count_nonzero(pred)) + int(np.count_nonzero(ref))
    if total == 0:
        return math.nan
    return 2.0 * int(np.count_nonzero(pred & ref)) / total


def iou(pred: np.ndarray, ref: np.ndarray) -> float:
    """Intersection over union (Jaccard) ``|P∩R| / |P∪R|`` of two boolean masks (Z, Y, X).

    Returns:
        A value in [0, 1]; NaN when both masks are empty.

    Raises:
        ValueError: if the masks are not 3D arrays of one shape.
    """
    pred, ref = check_masks(pred, ref)
    union = int(np.count_nonzero(pred | ref))
    if union == 0:
        return math.nan
    return int(np.count_nonzero(pred & ref)) / union


def volume_difference_ml(pred: np.ndarray, ref: np.ndarray, spacing_mm: Sequence[float]) -> float:
    """Signed volume difference ``vol(P) - vol(R)`` in ml (spacing in mm along Z, Y, X).

    Raises:
        ValueError: on masks of different shape or a non-positive spacing.
    """
    pred, ref = check_masks(pred, ref)
    voxel_ml = float(np.prod(check_spacing(spacing_mm))) / 1000.0
    return (int(np.count_nonzero(pred)) - int(np.count_nonzero(ref))) * voxel_ml


def image_diagonal_mm(shape: Sequence[int], spacing_mm: Sequence[float]) -> float:
    """Length in mm of the field of view's diagonal, ``sqrt(sum((shape * spacing)²))``."""
    extent = np.asarray(shape, dtype=np.float64) * np.asarray(check_spacing(spacing_mm))
    return float(np.sqrt(np.sum(extent**2)))


def _hd95_from(distances: tuple[np.ndarray, np.ndarray]) -> float:
    return float(max(np.percentile(distances[0], 95), np.percentile(distances[1], 95)))


def _voxel_nsd_from(distances: tuple[np.ndarray, np.ndarray], tolerance_mm: float) -> float:
    limit = tolerance_mm + _TIE_MM
    close = int(np.count_nonzero(distances[0] <= limit))
    close += int(np.count_nonzero(distances[1] <= limit))
    return close / (distances[0].size + distances[1].size)


def hd95(pred: np.ndarray, ref: np.ndarray, spacing_mm: Sequence[float]) -> float:
    """Symmetric 95th-percentile Hausdorff distance in mm (see the module docstring).

    Returns:
        Distance in mm; NaN if both masks are empty; the image diagonal in mm if exactly one
        is empty.

    Raises:
        ValueError: on masks of different shape or a non-positive spacing.
    """
    pred, ref = check_masks(pred, ref)
    has_pred, has_ref = bool(pred.any()), bool(ref.any())
    if not has_pred and not has_ref:
        return math.nan
    if not has_pred or not has_ref:
        return image_diagonal_mm(pred.shape, spacing_mm)
    return _hd95_from(directed_surface_distances(pred, ref, spacing_mm))


def _check_tolerance(tolerance_mm: float) -> None:
    if not tolerance_mm >= 0:
        raise ValueError(f"tolerance_mm must be >= 0, got {tolerance_mm=}")


def normalized_surface_dice(
    pred: np.ndarray, ref: np.ndarray, spacing_mm: Sequence[float], tolerance_mm: float
) -> float:
    """Normalised surface Dice: the share of surface *area* within ``tolerance_mm`` of the
    other surface (surfels weighted by area, as DeepMind's ``surface-distance`` and MONAI's
    ``compute_surface_dice(use_subvoxels=True)``; see the module docstring).

    Args:
        pred: Boolean mask (Z, Y, X).
        ref: Boolean mask of the same shape.
        spacing_mm: Voxel size in mm along (Z, Y, X).
        tolerance_mm: Accepted surface deviation in mm (>= 0; a distance equal to it counts).

    Returns:
        A value in [0, 1]; NaN if both masks are empty, 0 if exactly one is.

    Raises:
        ValueError: on masks of different shape, bad spacing or a negative tolerance.
    """
    _check_tolerance(tolerance_mm)
    pred, ref = check_masks(pred, ref)
    has_pred, has_ref = bool(pred.any()), bool(ref.any())
    if not has_pred and not has_ref:
        return math.nan
    if not has_pred or not has_ref:
        return 0.0
    return surface_dice_from_surfels(surfel_distances(pred, ref, spacing_mm), tolerance_mm)


def boundary_voxel_nsd(
    pred: np.ndarray, ref: np.ndarray, spacing_mm: Sequence[float], tolerance_mm: float
) -> float:
    """The boundary-voxel count variant of the NSD (not the published one; see the module
    docstring): ``(#{p∈∂P: d(p,∂R) ≤ τ} + #{r∈∂R: d(r,∂P) ≤ τ}) / (|∂P| + |∂R|)``.

    Returns:
        A value in [0, 1]; NaN if both masks are empty, 0 if exactly one is.

    Raises:
        ValueError: on masks of different shape, bad spacing or a negative tolerance.
    """
    _check_tolerance(tolerance_mm)
    pred, ref = check_masks(pred, ref)
    has_pred, has_ref = bool(pred.any()), bool(ref.any())
    if not has_pred and not has_ref:
        return math.nan
    if not has_pred or not has_ref:
        return 0.0
    return _voxel_nsd_from(directed_surface_distances(pred, ref, spacing_mm), tolerance_mm)


def _mask_metrics(
    pred: np.ndarray, ref: np.ndarray, spacing: Spacing3, tolerance_mm: float
) -> dict[str, Any]:
    """Every metric for one pair of masks, computing surface distances once."""
    n_pred, n_ref = int(np.count_nonzero(pred)), int(np.count_nonzero(ref))
    inter = int(np.count_nonzero(pred & ref))
    voxel_ml = float(np.prod(spacing)) / 1000.0
    row: dict[str, Any] = {
        "dice": 2.0 * inter / (n_pred + n_ref) if n_pred + n_ref else math.nan,
        "iou": inter / (n_pred + n_ref - inter) if n_pred + n_ref else math.nan,
        "hd95_mm": math.nan,
        "nsd": math.nan,
        "volume_difference_ml": (n_pred - n_ref) * voxel_ml,
        "pred_voxels": n_pred,
        "ref_voxels": n_ref,
        "pred_volume_ml": n_pred * voxel_ml,
        "ref_volume_ml": n_ref * voxel_ml,
    }
    if n_pred and n_ref:
        row["hd95_mm"] = _hd95_from(directed_surface_distances(pred, ref, spacing))
        surfels = surfel_distances(pred, ref, spacing)
        row["nsd"] = surface_dice_from_surfels(surfels, tolerance_mm)
    elif n_pred or n_ref:
        row["hd95_mm"] = image_diagonal_mm(pred.shape, spacing)
        row["nsd"] = 0.0
    return row


def compute_case_metrics(
    pred_labels: np.ndarray,
    ref_labels: np.ndarray,
    spacing_mm: Sequence[float],
    labels: Sequence[int],
    regions: Mapping[str, Sequence[int]] | None = None,
    nsd_tolerance_mm: float = 1.0,
    ignore_label: int | None = None,
) -> list[dict[str, Any]]:
    """All metrics of one case, one row per label and per region.

    Args:
        pred_labels: Integer label map (Z, Y, X).
        ref_labels: Reference label map of the same shape.
        spacing_mm: Voxel size in mm along (Z, Y, X).
        labels: Label values to score one by one (e.g. ``[1, 2]``).
        regions: Region name -> label values it unites (``{"whole tumour": [1, 2, 3]}``).
        nsd_tolerance_mm: Tolerance of the normalised surface Dice, in mm.
        ignore_label: Reference value of unannotated voxels: they are outside both masks
            of every target (whatever the prediction holds there).

    Returns:
        One dict per label then per region, with keys ``target`` (the label value as a
        string, or the region name), ``kind`` (``"label"`` or ``"region"``), ``label_values``
        (e.g. ``"1+2+3"``), the metrics of :data:`METRIC_NAMES`, ``pred_voxels``,
        ``ref_voxels``, ``pred_volume_ml`` and ``ref_volume_ml``. Values are Python scalars.

    Raises:
        ValueError: on maps of different shape, bad spacing or tolerance, or an empty region.
    """
    pred_labels = np.asarray(pred_labels)
    ref_labels = np.asarray(ref_labels)
    check_masks(pred_labels, ref_labels)
    spacing = check_spacing(spacing_mm)
    if not nsd_tolerance_mm >= 0:
        raise ValueError(f"nsd_tolerance_mm must be >= 0, got {nsd_tolerance_mm=}")
    targets: list[tuple[str, str, tuple[int, ...]]] = [
        (str(int(v)), "label", (int(v),)) for v in labels
    ]
    for name, values in (regions or {}).items():
        members = tuple(int(v) for v in values)
        if not members:
            raise ValueError(f"region {name!r} lists no label values")
        targets.append((str(name), "region", members))
    annotated = None if ignore_label is None else ref_labels != ignore_label
    rows = []
    for target, kind, members in targets:
        if len(members) == 1:
            pred, ref = pred_labels == members[0], ref_labels == members[0]
        else:
            pred, ref = np.isin(pred_labels, members), np.isin(ref_labels, members)
        if annotated is not None:
            pred, ref = pred & annotated, ref & annotated
        row: dict[str, Any] = {
            "target": target,
            "kind": kind,
            "label_values": "+".join(str(v) for v in members),
        }
        row.update(_mask_metrics(pred, ref, spacing, nsd_tolerance_mm))
        rows.append(row)
    return rows
