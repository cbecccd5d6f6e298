"""The surface-area NSD: closed-form cases by hand, then DeepMind's ``surface-distance`` and
MONAI's ``compute_surface_dice(use_subvoxels=True)`` as references (to 1e-6)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import ndimage

from autoseg.evaluation import surfels
from autoseg.evaluation.metrics import boundary_voxel_nsd, normalized_surface_dice
from autoseg.evaluation.surfels import (
    neighbourhood_codes,
    surface_dice_from_surfels,
    surfel_area_table,
    surfel_distances,
)

SPACINGS = [(1.0, 1.0, 1.0), (3.0, 0.7, 0.9), (0.5, 2.5, 1.3)]


def _voxels(shape, *points) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    for point in points:
        mask[point] = True
    return mask


def _blobs(seed: int) -> tuple[np.ndarray, np.ndarray, tuple[float, ...], float]:
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(8, 24, 3))
    a = ndimage.gaussian_filter(rng.random(shape), 1.5) > 0.5
    b = ndimage.gaussian_filter(rng.random(shape), 1.5) > 0.5
    a[0, 0, 0] = b[-1, -1, -1] = True  # never empty; touches the image border
    spacing = tuple(float(s) for s in rng.uniform(0.3, 4.0, 3))
    return a, b, spacing, float(rng.uniform(0.0, 4.0))


@pytest.mark.parametrize("spacing", SPACINGS)
def test_single_voxel_surface_is_an_octahedron(spacing) -> None:
    # 8 cubes with one corner each; each triangle has area vector (1, 1, 1) / 8 in voxel
    # units, i.e. |(sy·sx, sz·sx, sz·sy)| / 8 in mm².
    sz, sy, sx = spacing
    codes = neighbourhood_codes(_voxels((1, 1, 1), (0, 0, 0)))
    assert codes.shape == (2, 2, 2) and sorted(codes.ravel()) == [1, 2, 4, 8, 16, 32, 64, 128]
    area = surfel_area_table(spacing)[codes].sum()
    assert area == pytest.approx(math.sqrt((sy * sx) ** 2 + (sz * sx) ** 2 + (sz * sy) ** 2))


@pytest.mark.parametrize("spacing", SPACINGS)
def test_flat_faces_have_the_area_of_a_voxel_face(spacing) -> None:
    sz, sy, sx = spacing
    table = surfel_area_table(spacing)
    # Four corners on one side of the cube: a plane across Z (bits 7..4: a = 0), Y, X.
    assert table[0b11110000] == pytest.approx(sy * sx)
    assert table[0b11001100] == pytest.approx(sz * sx)
    assert table[0b10101010] == pytest.approx(sz * sy)
    assert table[0] == table[255] == 0.0
    np.testing.assert_allclose(table, table[::-1], atol=1e-12)  # a code and its complement


@pytest.mark.parametrize(("tolerance", "expected"), [(0.99, 0.0), (1.0, 0.5), (2.0, 1.0)])
def test_two_voxels_two_apart(tolerance, expected) -> None:
    # Surfels sit at the voxel centre ±0.5: the facing halves are 1 mm apart, the far ones 2.
    pred = _voxels((1, 1, 5), (0, 0, 1))
    ref = _voxels((1, 1, 5), (0, 0, 3))
    assert normalized_surface_dice(pred, ref, (1.0, 1.0, 1.0), tolerance) == expected


@pytest.mark.parametrize(
    ("tolerance", "expected"),
    [(2.9, 0.0), (3.0, 0.25), (3.05, 0.5), (6.0, 0.75), (6.02, 0.75), (6.1, 1.0)],
)
def test_anisotropic_single_voxels(tolerance, expected) -> None:
    # Voxels (0, 0, 0) and (2, 0, 1) at (3, 1, 0.5) mm: surfel offsets (dz, dx) to the
    # nearest other surfel are (1, 0), (1, 1), (2, 0), (2, 1) voxels: 3, 3.04, 6 and 6.02 mm,
    # each for a quarter of the (equal-area) surfels.
    pred = _voxels((4, 3, 3), (0, 0, 0))
    ref = _voxels((4, 3, 3), (2, 0, 1))
    assert normalized_surface_dice(pred, ref, (3.0, 1.0, 0.5), tolerance) == expected


def test_area_weighting_differs_from_the_voxel_count_on_thick_slices() -> None:
    # A sphere on 3 mm slices and the same sphere shifted by one slice (3 mm) along Z: at
    # 1 mm most of the surface area is in tolerance (the flanks), while the voxel count
    # weighs every boundary voxel alike, whatever its share of the surface.
    spacing = (3.0, 0.7, 0.7)
    z, y, x = np.indices((24, 60, 60)) * np.asarray(spacing)[:, None, None, None]
    pred = (z - 33.0) ** 2 + (y - 21.0) ** 2 + (x - 21.0) ** 2 < 15.0**2
    ref = (z - 36.0) ** 2 + (y - 21.0) ** 2 + (x - 21.0) ** 2 < 15.0**2
    area_nsd = normalized_surface_dice(pred, ref, spacing, 1.0)
    voxel_nsd = boundary_voxel_nsd(pred, ref, spacing, 1.0)
    assert 0.0 < voxel_nsd < area_nsd < 1.0
    assert area_nsd - voxel_nsd > 0.1


def test_kdtree_path_equals_the_edt_path(monkeypatch: pytest.MonkeyPatch) -> None:
    for seed in range(3):
        a, b, spacing, tolerance = _blobs(seed)
        edt = surfel_distances(a, b, spacing)
        monkeypatch.setattr(surfels, "_EDT_MAX_CUBES", 0)
        tree = surfel_distances(a, b, spacing)
        monkeypatch.undo()
        np.testing.assert_allclose(tree.pred_to_ref, edt.pred_to_ref, atol=1e-12)
        np.testing.assert_allclose(tree.ref_to_pred, edt.ref_to_pred, atol=1e-12)
        assert surface_dice_from_surfels(tree, tolerance) == pytest.approx(
            surface_dice_from_surfels(edt, tolerance), abs=1e-12
        )


def test_result_does_not_depend_on_the_bounding_box() -> None:
    a, b, spacing, tolerance = _blobs(3)
    big_a = np.zeros(tuple(n + 9 for n in a.shape), dtype=bool)
    big_b = np.zeros_like(big_a)
    window = tuple(slice(4, 4 + n) for n in a.shape)
    big_a[window], big_b[window] = a, b
    assert normalized_surface_dice(big_a, big_b, spacing, tolerance) == pytest.approx(
        normalized_surface_dice(a, b, spacing, tolerance), abs=1e-12
    )


# --- reference implementations --------------------------------------------------------------


@pytest.mark.parametrize("spacing", [*SPACINGS, (4.7, 0.31, 2.2)])
def test_area_table_equals_surface_distance(spacing) -> None:
    lookup = pytest.importorskip("surface_distance.lookup_tables")
    expected = lookup.create_table_neighbour_code_to_surface_area(spacing)
    np.testing.assert_allclose(surfel_area_table(spacing), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_nsd_equals_surface_distance(seed) -> None:
    sd = pytest.importorskip("surface_distance")
    a, b, spacing, tolerance = _blobs(seed)
    distances = sd.compute_surface_distances(b, a, spacing)  # (gt, pred)
    expected = sd.compute_surface_dice_at_tolerance(distances, tolerance)
    assert normalized_surface_dice(a, b, spacing, tolerance) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_nsd_equals_monai_with_subvoxels(seed) -> None:
    monai_metrics = pytest.importorskip("monai.metrics")
    torch = pytest.importorskip("torch")
    a, b, spacing, tolerance = _blobs(seed + 10)

    def one_hot(mask: np.ndarray):
        return torch.from_numpy(np.stack([~mask, mask])[None].astype(np.float64))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # MONAI's own deprecations
        expected = monai_metrics.compute_surface_dice(
            one_hot(a),
            one_hot(b),
            class_thresholds=[tolerance],
            include_background=False,
            spacing=spacing,
            use_subvoxels=True,
        )
    assert normalized_surface_dice(a, b, spacing, tolerance) == pytest.approx(
        float(expected), abs=1e-6
    )
