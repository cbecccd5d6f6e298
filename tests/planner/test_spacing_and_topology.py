from __future__ import annotations

import numpy as np
import pytest

from autoseg.planner.heuristics import PlannerHeuristics
from autoseg.planner.spacing import coarse_axis, target_spacing
from autoseg.planner.unet_topology import initial_patch_size, pooling_topology, search_unet

H = PlannerHeuristics()


def test_target_spacing_is_the_median_for_isotropic_data() -> None:
    spacings = [(1.0, 0.8, 0.8), (1.2, 0.9, 0.9), (1.4, 1.0, 1.0)]
    shapes = [(100, 120, 120)] * 3
    assert target_spacing(spacings, shapes, H) == pytest.approx((1.2, 0.9, 0.9))


def test_coarse_axis_uses_the_lower_percentile_for_thick_slices() -> None:
    # Most cases have 5 mm slices, some 1.5 mm: thick-slice data with few slices.
    spacings = [(5.0, 0.7, 0.7)] * 8 + [(1.5, 0.7, 0.7)] * 2
    shapes = [(30, 400, 400)] * 8 + [(100, 400, 400)] * 2
    target = target_spacing(spacings, shapes, H)
    expected_z = np.percentile([s[0] for s in spacings], H.anisotropic_axis_percentile)
    assert target[0] == pytest.approx(expected_z) and target[0] < 5.0
    assert target[1:] == pytest.approx((0.7, 0.7))


def test_coarse_axis_rule_needs_few_voxels_too() -> None:
    # Coarse spacing but as many voxels along z as in-plane: the median is kept.
    spacings = [(5.0, 0.7, 0.7)] * 8 + [(1.5, 0.7, 0.7)] * 2
    shapes = [(400, 400, 400)] * 10
    assert target_spacing(spacings, shapes, H)[0] == pytest.approx(5.0)


def test_coarse_axis_is_found_only_beyond_the_threshold() -> None:
    assert coarse_axis((5.0, 0.7, 0.7), 3.0) == 0
    assert coarse_axis((1.0, 2.5, 1.0), 3.0) is None


def test_isotropic_topology_pools_every_axis_down_to_the_minimum_edge() -> None:
    strides, kernels, patch = pooling_topology((128, 128, 128), (1.0, 1.0, 1.0), H)
    assert strides[0] == (1, 1, 1)
    assert all(s == (2, 2, 2) for s in strides[1:])
    # 128 / 2**5 = 4 = unet_min_feature_map
    assert len(strides) == 6 and all(k == (3, 3, 3) for k in kernels)
    assert patch == (128, 128, 128)


def test_anisotropic_topology_waits_to_pool_the_coarse_axis() -> None:
    strides, kernels, _ = pooling_topology((24, 256, 256), (5.0, 0.7, 0.7), H)
    assert strides[1][0] == 1 and strides[1][1:] == (2, 2)
    assert kernels[0] == (1, 3, 3)
    assert kernels[-1] == (3, 3, 3)
    z_pools = sum(s[0] == 2 for s in strides)
    xy_pools = sum(s[1] == 2 for s in strides)
    assert z_pools < xy_pools


def test_patch_is_padded_to_the_stride_divisor() -> None:
    strides, _, patch = pooling_topology((50, 70, 90), (1.0, 1.0, 1.0), H)
    divisor = np.prod(np.asarray(strides), axis=0)
    assert all(p % d == 0 for p, d in zip(patch, divisor))
    assert all(p >= q for p, q in zip(patch, (50, 70, 90)))


def test_initial_patch_follows_spacing_and_is_clipped_to_the_median_shape() -> None:
    patch = initial_patch_size((2.0, 1.0, 1.0), (500, 500, 500), H)
    assert patch[1] == patch[2] and patch[0] * 2 == pytest.approx(patch[1], abs=2)
    assert initial_patch_size((1.0, 1.0, 1.0), (40, 50, 60), H) == (40, 50, 60)


def test_search_shrinks_until_it_fits_then_grows_the_batch() -> None:
    budget = {"voxels": 2 * 64**3}

    def fits(config, patch, batch):  # type: ignore[no-untyped-def]
        return int(np.prod(patch)) * batch <= budget["voxels"]

    choice = search_unet((1.0, 1.0, 1.0), (200, 200, 200), 10**9, 1, 2, H, fits, on_cpu=False)
    assert np.prod(choice.patch_size) * choice.batch_size <= budget["voxels"]
    assert choice.batch_size >= H.unet_min_batch_size
    assert max(choice.patch_size) - min(choice.patch_size) <= 32  # stays near cubic


def test_search_reports_when_nothing_fits() -> None:
    with pytest.raises(ValueError, match="no U-Net patch fits"):
        search_unet(
            (1.0, 1.0, 1.0), (64, 64, 64), 10**7, 1, 2, H, lambda c, p, b: False, on_cpu=True
        )


def test_an_image_too_small_to_pool_says_so_and_not_memory() -> None:
    from autoseg.planner.unet_topology import ImageTooSmallError

    fine = PlannerHeuristics(unet_min_feature_map=8)
    with pytest.raises(ImageTooSmallError, match="unet_min_feature_map 8"):
        search_unet(
            (1.0, 1.0, 1.0), (10, 15, 15), 10**5, 1, 2, fine, lambda c, p, b: True, on_cpu=True
        )
    # The same image at the default minimum feature map pools, and plans.
    choice = search_unet(
        (1.0, 1.0, 1.0), (10, 15, 15), 10**5, 1, 2, H, lambda c, p, b: True, on_cpu=True
    )
    assert choice.batch_size >= H.unet_min_batch_size


def test_cpu_unet_widths_halve_down_to_the_floor() -> None:
    from autoseg.planner.unet_topology import cpu_unet_widths

    assert cpu_unet_widths(PlannerHeuristics()) == ((32, 320), (16, 160))
    assert cpu_unet_widths(PlannerHeuristics(cpu_unet_min_base_features=8)) == (
        (32, 320),
        (16, 160),
        (8, 80),
    )
    off = PlannerHeuristics(cpu_unet_min_patch_coverage=0.0)
    assert cpu_unet_widths(off) == ((32, 320),)
    narrow = PlannerHeuristics(cpu_unet_base_features=12, cpu_unet_max_features=16)
    assert cpu_unet_widths(narrow) == ((12, 16),)
    capped = PlannerHeuristics(cpu_unet_base_features=32, cpu_unet_max_features=40)
    assert cpu_unet_widths(capped) == ((32, 40), (16, 20))
