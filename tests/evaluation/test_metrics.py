"""Metrics checked against hand-computed values on tiny arrays, and against brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from autoseg.evaluation import surface
from autoseg.evaluation.metrics import (
    METRIC_NAMES,
    ROW_KEYS,
    boundary_voxel_nsd,
    compute_case_metrics,
    dice,
    directed_surface_distances,
    hd95,
    image_diagonal_mm,
    iou,
    normalized_surface_dice,
    volume_difference_ml,
)


def _lines(shape=(3, 3, 7)) -> tuple[np.ndarray, np.ndarray]:
    """P: 3 voxels x=0..2, R: 5 voxels x=0..4, same row."""
    pred = np.zeros(shape, dtype=bool)
    ref = np.zeros(shape, dtype=bool)
    pred[1, 1, 0:3] = True
    ref[1, 1, 0:5] = True
    return pred, ref


def _cube(shape=(7, 7, 8), start=(1, 1, 1), size=5) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    z, y, x = start
    mask[z : z + size, y : y + size, x : x + size] = True
    return mask


def test_overlap_metrics_on_two_lines() -> None:
    pred, ref = _lines()
    assert dice(pred, ref) == pytest.approx(0.75)  # 2*3 / (3+5)
    assert iou(pred, ref) == pytest.approx(0.6)  # 3 / 5
    assert volume_difference_ml(pred, ref, (2.0, 2.0, 2.0)) == pytest.approx(-0.016)  # -2 * 8 mm³


@pytest.mark.parametrize(
    ("spacing", "expected"),
    [((1.0, 1.0, 1.0), 1.8), ((1.0, 1.0, 0.5), 0.9), ((4.0, 2.0, 3.0), 5.4)],
)
def test_hd95_of_two_lines_scales_with_x_spacing(spacing, expected) -> None:
    # R->P distances (0, 0, 0, 1, 2) * x-spacing; P95 = 1.8 * x-spacing; P->R all 0.
    pred, ref = _lines()
    to_ref, to_pred = directed_surface_distances(pred, ref, spacing)
    np.testing.assert_allclose(to_ref, 0.0)
    np.testing.assert_allclose(np.sort(to_pred), np.array([0, 0, 0, 1, 2]) * spacing[2])
    assert hd95(pred, ref, spacing) == pytest.approx(expected)
    assert hd95(ref, pred, spacing) == pytest.approx(expected)  # symmetric


@pytest.mark.parametrize(("tolerance", "expected"), [(0.0, 6 / 8), (1.0, 7 / 8), (2.0, 1.0)])
def test_boundary_voxel_nsd_of_two_lines(tolerance, expected) -> None:
    pred, ref = _lines()
    assert boundary_voxel_nsd(pred, ref, (1.0, 1.0, 1.0), tolerance) == pytest.approx(expected)


def test_anisotropic_distance_between_single_voxels() -> None:
    pred = np.zeros((4, 3, 3), dtype=bool)
    ref = np.zeros_like(pred)
    pred[0, 0, 0] = True
    ref[2, 0, 1] = True
    spacing = (3.0, 1.0, 0.5)
    distance = math.sqrt((2 * 3.0) ** 2 + (1 * 0.5) ** 2)  # 6.0208 mm
    assert hd95(pred, ref, spacing) == pytest.approx(distance)
    assert boundary_voxel_nsd(pred, ref, spacing, 6.0) == 0.0
    assert boundary_voxel_nsd(pred, ref, spacing, 6.1) == 1.0


def test_parallel_lines_three_mm_apart_along_z() -> None:
    pred = np.zeros((2, 3, 5), dtype=bool)
    ref = np.zeros_like(pred)
    pred[0, 1, 1:4] = True
    ref[1, 1, 1:4] = True
    assert dice(pred, ref) == 0.0
    assert hd95(pred, ref, (3.0, 1.0, 1.0)) == pytest.approx(3.0)
    assert boundary_voxel_nsd(pred, ref, (3.0, 1.0, 1.0), 2.9) == 0.0
    assert boundary_voxel_nsd(pred, ref, (3.0, 1.0, 1.0), 3.0) == 1.0


def test_cube_surface_excludes_interior_and_shift_by_one_voxel() -> None:
    pred = _cube(start=(1, 1, 1))
    ref = _cube(start=(1, 1, 2))
    to_ref, to_pred = directed_surface_distances(pred, ref, (1.0, 1.0, 1.0))
    assert to_ref.size == to_pred.size == 125 - 27  # 5³ cube minus its 3³ interior
    # The face x=1 (25 voxels) and the 9 inner voxels of the face x=5 are 1 mm away.
    assert int(np.count_nonzero(to_ref == 1.0)) == 34
    assert int(np.count_nonzero(to_ref == 0.0)) == 64
    assert hd95(pred, ref, (1.0, 1.0, 1.0)) == pytest.approx(1.0)
    assert boundary_voxel_nsd(pred, ref, (1.0, 1.0, 1.0), 0.5) == pytest.approx(64 / 98)
    assert boundary_voxel_nsd(pred, ref, (1.0, 1.0, 1.0), 1.0) == 1.0
    assert dice(pred, ref) == pytest.approx(2 * 100 / 250)


def test_identical_masks_are_perfect() -> None:
    mask = _cube()
    assert dice(mask, mask) == 1.0
    assert iou(mask, mask) == 1.0
    assert hd95(mask, mask, (2.0, 1.0, 1.0)) == 0.0
    assert normalized_surface_dice(mask, mask, (2.0, 1.0, 1.0), 0.0) == 1.0
    assert boundary_voxel_nsd(mask, mask, (2.0, 1.0, 1.0), 0.0) == 1.0
    assert volume_difference_ml(mask, mask, (2.0, 1.0, 1.0)) == 0.0


def test_empty_mask_conventions() -> None:
    empty = np.zeros((3, 3, 7), dtype=bool)
    _, ref = _lines()
    spacing = (2.0, 1.0, 0.5)
    for value in (
        dice(empty, empty),
        iou(empty, empty),
        hd95(empty, empty, spacing),
        normalized_surface_dice(empty, empty, spacing, 1.0),
        boundary_voxel_nsd(empty, empty, spacing, 1.0),
    ):
        assert math.isnan(value)
    assert volume_difference_ml(empty, empty, spacing) == 0.0
    diagonal = math.sqrt(6.0**2 + 3.0**2 + 3.5**2)
    assert image_diagonal_mm(empty.shape, spacing) == pytest.approx(diagonal)
    for pred, reference in ((empty, ref), (ref, empty)):
        assert dice(pred, reference) == 0.0
        assert iou(pred, reference) == 0.0
        assert normalized_surface_dice(pred, reference, spacing, 1.0) == 0.0
        assert boundary_voxel_nsd(pred, reference, spacing, 1.0) == 0.0
        assert hd95(pred, reference, spacing) == pytest.approx(diagonal)
    assert volume_difference_ml(empty, ref, spacing) == pytest.approx(-5 * 1.0 / 1000)


def _brute_force(pred: np.ndarray, ref: np.ndarray, spacing, tolerance: float):
    """Boundary by explicit 6-neighbour test; distances by all-pairs cdist."""

    def boundary(mask: np.ndarray) -> np.ndarray:
        padded = np.pad(mask, 1)
        core = padded[1:-1, 1:-1, 1:-1]
        inside = np.ones_like(mask)
        for axis in range(3):
            for step in (-1, 1):
                inside &= np.roll(padded, step, axis=axis)[1:-1, 1:-1, 1:-1]
        return core & ~inside

    points_p = np.argwhere(boundary(pred)) * np.asarray(spacing)
    points_r = np.argwhere(boundary(ref)) * np.asarray(spacing)
    distances = cdist(points_p, points_r)
    d_pr, d_rp = distances.min(axis=1), distances.min(axis=0)
    hd = max(np.percentile(d_pr, 95), np.percentile(d_rp, 95))
    nsd = (np.sum(d_pr <= tolerance) + np.sum(d_rp <= tolerance)) / (d_pr.size + d_rp.size)
    return hd, nsd


@pytest.mark.parametrize("method", ["edt", "kdtree"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_surface_metrics_match_brute_force_on_random_blobs(seed, method, monkeypatch) -> None:
    if method == "kdtree":  # every box is "large": the k-d tree path
        monkeypatch.setattr(surface, "_EDT_MAX_VOXELS", 0)
    rng = np.random.default_rng(seed)
    shape = (9, 11, 10)
    zz, yy, xx = np.indices(shape)
    centre_p, centre_r = rng.uniform(2, 7, size=3), rng.uniform(2, 7, size=3)
    pred = ((zz - centre_p[0]) ** 2 + (yy - centre_p[1]) ** 2 + (xx - centre_p[2]) ** 2) < 9
    ref = ((zz - centre_r[0]) ** 2 + (yy - centre_r[1]) ** 2 + (xx - centre_r[2]) ** 2) < 12
    ref |= rng.random(shape) < 0.03  # speckle: many small components, some on the border
    spacing = (2.5, 0.8, 1.1)
    hd, nsd = _brute_force(pred, ref, spacing, 1.5)
    assert hd95(pred, ref, spacing) == pytest.approx(hd)
    assert boundary_voxel_nsd(pred, ref, spacing, 1.5) == pytest.approx(nsd)


@pytest.mark.parametrize("edt_max_voxels", [2_000_000, 0])
def test_both_distance_paths_agree_on_exact_ties(edt_max_voxels, monkeypatch) -> None:
    monkeypatch.setattr(surface, "_EDT_MAX_VOXELS", edt_max_voxels)
    pred = _cube(start=(1, 1, 1))
    ref = _cube(start=(1, 1, 2))
    spacing = (0.3, 0.7, 0.1)  # decimal spacings: distances are 0.1 mm up to rounding
    assert boundary_voxel_nsd(pred, ref, spacing, 0.1) == 1.0
    assert boundary_voxel_nsd(pred, ref, spacing, 0.05) == pytest.approx(64 / 98)
    assert hd95(pred, ref, spacing) == pytest.approx(0.1)


def test_result_does_not_depend_on_the_field_of_view() -> None:
    pred, ref = _lines()
    pred[0, 0, 6] = True  # a voxel on the image border
    big_pred = np.zeros((40, 50, 60), dtype=bool)
    big_ref = np.zeros_like(big_pred)
    big_pred[10:13, 20:23, 30:37] = pred
    big_ref[10:13, 20:23, 30:37] = ref
    spacing = (1.5, 0.7, 0.9)
    assert hd95(big_pred, big_ref, spacing) == pytest.approx(hd95(pred, ref, spacing))
    for nsd in (normalized_surface_dice, boundary_voxel_nsd):
        assert nsd(big_pred, big_ref, spacing, 1.0) == pytest.approx(nsd(pred, ref, spacing, 1.0))


def test_bad_arguments_raise() -> None:
    pred, ref = _lines()
    with pytest.raises(ValueError, match="shape"):
        dice(pred, ref[:, :, :5])
    with pytest.raises(ValueError, match="spacing"):
        hd95(pred, ref, (1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="tolerance"):
        normalized_surface_dice(pred, ref, (1.0, 1.0, 1.0), -1.0)
    with pytest.raises(ValueError, match="tolerance"):
        boundary_voxel_nsd(pred, ref, (1.0, 1.0, 1.0), -1.0)
    with pytest.raises(ValueError, match="non-empty"):
        directed_surface_distances(pred, np.zeros_like(ref), (1.0, 1.0, 1.0))


def test_compute_case_metrics_rows_for_labels_and_regions() -> None:
    pred = np.zeros((3, 3, 7), dtype=np.int16)
    ref = np.zeros_like(pred)
    pred[1, 1, 0:3] = 1
    ref[1, 1, 0:5] = 1
    pred[1, 1, 5:7] = 2  # label 2 only in the prediction
    rows = compute_case_metrics(
        pred, ref, (1.0, 1.0, 1.0), [1, 2, 3], {"both": [1, 2]}, nsd_tolerance_mm=1.0
    )
    assert [r["target"] for r in rows] == ["1", "2", "3", "both"]
    assert [r["kind"] for r in rows] == ["label", "label", "label", "region"]
    assert all(tuple(r) == ROW_KEYS for r in rows)
    one, two, three, both = rows
    assert (one["dice"], one["iou"], one["hd95_mm"]) == pytest.approx((0.75, 0.6, 1.8))
    assert one["nsd"] == pytest.approx(normalized_surface_dice(pred == 1, ref == 1, (1, 1, 1), 1))
    assert one["nsd"] != pytest.approx(0.875)  # the surface-area NSD, not the voxel count
    assert one["pred_voxels"] == 3 and one["ref_voxels"] == 5
    assert type(one["pred_voxels"]) is int and type(one["dice"]) is float
    assert two["dice"] == 0.0 and two["hd95_mm"] == pytest.approx(math.sqrt(9 + 9 + 49))
    assert all(math.isnan(three[m]) for m in METRIC_NAMES if m != "volume_difference_ml")
    # Region {1, 2}: P = x 0..2 and 5..6 (5 voxels), R = x 0..4 -> Dice 2*3/10.
    assert both["dice"] == pytest.approx(0.6) and both["label_values"] == "1+2"
    assert both["volume_difference_ml"] == pytest.approx(0.0)


def test_compute_case_metrics_rejects_an_empty_region() -> None:
    pred, ref = _lines()
    with pytest.raises(ValueError, match="region 'r'"):
        compute_case_metrics(pred.astype(int), ref.astype(int), (1, 1, 1), [1], {"r": []})


def test_ignore_label_voxels_are_outside_every_mask() -> None:
    ref = np.zeros((1, 4, 4), dtype=np.uint8)
    ref[0, 0, :2] = 1
    ref[0, 1:, :] = 9  # unannotated
    pred = np.ones((1, 4, 4), dtype=np.uint8)  # predicts 1 everywhere, also where ignored
    spacing = (1.0, 1.0, 1.0)
    (row,) = compute_case_metrics(pred, ref, spacing, [1], ignore_label=9)
    assert (row["pred_voxels"], row["ref_voxels"], row["dice"]) == (4, 2, pytest.approx(2 / 3))
    (plain,) = compute_case_metrics(pred, ref, spacing, [1])
    assert plain["pred_voxels"] == 16
    rows = compute_case_metrics(pred, ref, spacing, [], {"all": (1, 2)}, ignore_label=9)
    assert [r["target"] for r in rows] == ["all"] and rows[0]["pred_voxels"] == 4
