"""Samplers, the sampling-time spatial transform and DeepMedic's pathway alignment."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from autoseg.data.geometry import Geometry
from autoseg.planner.plans import AugmentationPlan, load_plans
from autoseg.preprocessing.store import (
    CaseProperties,
    PreprocessedCase,
    sample_class_locations,
    save_preprocessed_case,
)
from autoseg.trainers.sampling import PatchSampler, SegmentSampler
from autoseg.trainers.spatial import SpatialParams, crop_padded, draw_coordinates, read_patch
from autoseg.workspace import Workspace

SHAPE = (16, 20, 24)


def _write_case(folder: Path, case_id: str, seg: np.ndarray, image: np.ndarray) -> None:
    geometry = Geometry(seg.shape, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    locations = sample_class_locations(seg, (0, 1, 2), None, seed=0)
    present = tuple(int(v) for v in np.unique(seg) if v)
    properties = CaseProperties(
        case_id, geometry, ((0, seg.shape[0]), (0, seg.shape[1]), (0, seg.shape[2])),
        (1.0, 1.0, 1.0), seg.shape, present,
    )  # fmt: skip
    save_preprocessed_case(folder, PreprocessedCase(properties, image, seg, None, locations))


@pytest.fixture
def label_folder(tmp_path: Path) -> Path:
    """Two cases whose image equals their label map (+1): class 1 a block, class 2 a voxel pair."""
    folder = tmp_path / "pre"
    for i in range(2):
        seg = np.zeros(SHAPE, dtype=np.uint8)
        seg[3 + i : 9 + i, 4:12, 5:14] = 1
        seg[12, 15, 19 - i : 21 - i] = 2
        _write_case(folder, f"c{i}", seg, (seg[None] + 1.0).astype(np.float32))
    return folder


def test_crop_padded_reads_inside_and_pads_outside() -> None:
    array = np.arange(2 * 4 * 5 * 6, dtype=np.float32).reshape(2, 4, 5, 6) + 1
    inside = crop_padded(array, (1, 1, 1), (2, 3, 4))
    np.testing.assert_array_equal(inside, array[:, 1:3, 1:4, 1:5])
    edge = crop_padded(array, (-1, 3, 4), (3, 3, 3))
    np.testing.assert_array_equal(edge[:, 1:, :2, :2], array[:, :2, 3:, 4:])
    assert (edge[:, 0] == 0).all() and (edge[:, :, 2] == 0).all()
    assert not crop_padded(array, (10, 0, 0), (2, 2, 2)).any()


def test_identity_transform_is_an_exact_crop() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((2, *SHAPE)).astype(np.float32)
    seg = rng.integers(0, 3, SHAPE).astype(np.uint8)
    plain, labels = read_patch(image, seg, (2, 3, 4), (8, 8, 8), None)
    from batchgenerators.augmentations.utils import create_zero_centered_coordinate_mesh

    mesh = create_zero_centered_coordinate_mesh((8, 8, 8))
    moved, moved_labels = read_patch(image, seg, (2, 3, 4), (8, 8, 8), mesh, order=3)
    np.testing.assert_allclose(moved, plain, atol=1e-5)
    np.testing.assert_array_equal(moved_labels, labels)


def test_transformed_images_are_interpolated_linearly_by_default() -> None:
    from batchgenerators.augmentations.utils import create_zero_centered_coordinate_mesh

    assert SpatialParams.from_plan(AugmentationPlan()).order == 1
    image = np.zeros((1, *SHAPE), np.float32)
    image[:, SHAPE[0] // 2 :] = 1.0  # a step along Z
    shifted = create_zero_centered_coordinate_mesh((8, 8, 8)).copy()
    shifted[0] += 0.5  # half a voxel along Z
    start = (SHAPE[0] // 2 - 4, 3, 4)
    linear, _ = read_patch(image, None, start, (8, 8, 8), shifted)
    profile = linear[0, :, 4, 4]
    assert profile[3] == pytest.approx(0.5, abs=1e-6)  # halfway across the step
    assert set(np.round(np.delete(profile, 3), 6)) == {0.0, 1.0}  # no spline ringing
    cubic, _ = read_patch(image, None, start, (8, 8, 8), shifted, order=3)
    assert np.abs(cubic[0, :, 4, 4] - profile).max() > 0.01  # the order matters here


def test_in_plane_augmentation_never_moves_along_the_coarse_axis() -> None:
    aug = AugmentationPlan(
        rotation_degrees=(180.0, 0.0, 0.0), rotate_in_plane_only=True, p_rotation=1.0,
        p_scale=1.0, elastic=True, p_elastic=1.0,
    )  # fmt: skip
    params = SpatialParams.from_plan(aug)
    assert params.in_plane_axis == 0
    np.random.seed(1)
    coords = draw_coordinates((6, 10, 12), params)
    assert coords is not None
    expected = np.arange(6) - 2.5
    np.testing.assert_allclose(coords[0], expected[:, None, None] * np.ones((1, 10, 12)))
    assert np.abs(coords[1:] - np.round(coords[1:])).max() > 0.01  # the plane did move


def test_patch_sampler_forces_foreground_in_the_last_third(label_folder: Path) -> None:
    np.random.seed(0)
    sampler = PatchSampler(label_folder, ["c0", "c1"], 3, (6, 6, 6), 0.33, {1: 0.5, 2: 0.5})
    assert sampler.forced_from == 2
    for _ in range(20):
        batch = sampler.generate_train_batch()
        assert batch["data"].shape == (3, 1, 6, 6, 6) and batch["seg"].shape == (3, 1, 6, 6, 6)
        assert (batch["seg"][2] > 0).any()  # forced
        assert (batch["data"][:2] > 0).all()  # random patches lie inside the image
        np.testing.assert_array_equal(batch["data"][:, 0] - 1, batch["seg"][:, 0])


def test_class_weights_pick_the_forced_class(label_folder: Path) -> None:
    np.random.seed(0)
    sampler = PatchSampler(label_folder, ["c0"], 1, (3, 3, 3), 1.0, {1: 0.0, 2: 1.0})
    for _ in range(10):
        assert sampler.generate_train_batch()["seg"][0, 0, 1, 1, 1] == 2  # centred on class 2


def test_segment_sampler_balances_classes(label_folder: Path) -> None:
    np.random.seed(0)
    sampler = SegmentSampler(label_folder, ["c0", "c1"], 8, (7, 7, 7), (2, 2, 2), (3, 3, 3))
    counts = np.zeros(3)
    for _ in range(60):
        batch = sampler.generate_train_batch()
        assert batch["seg"].shape == (8, 1, 3, 3, 3)  # only the output segment's labels
        inner = batch["data"][:, 0, 2:5, 2:5, 2:5]  # 0 beyond the image, where labels are 0
        np.testing.assert_array_equal(np.maximum(inner - 1, 0), batch["seg"][:, 0])
        counts += np.bincount(batch["seg"][:, 0, 1, 1, 1].ravel(), minlength=3)
    fractions = counts / counts.sum()
    np.testing.assert_allclose(fractions, 1 / 3, atol=0.08)


@pytest.mark.parametrize("augment", [False, True])
def test_deepmedic_normal_pathway_centre_is_the_target(
    label_folder: Path, planned_root: Path, augment: bool
) -> None:
    from autoseg.trainers.deepmedic_strategy import DeepMedicStrategy

    plans = load_plans(Workspace(planned_root).plans_json)
    plan = plans.configuration("deepmedic")
    aug = AugmentationPlan(
        mirror_axes=(0, 1, 2), p_rotation=0.0, p_scale=0.0, p_gamma=0.0, p_brightness=0.0,
        p_contrast=0.0, p_noise=0.0, p_blur=0.0, p_low_resolution=0.0,
    )  # fmt: skip
    plan = dataclasses.replace(plan, augmentation=aug)
    strategy = DeepMedicStrategy()
    spec = (strategy.train_loader if augment else strategy.val_loader)(
        plans, plan, label_folder, ["c0", "c1"]
    )
    rf = plan.network.normal.receptive_field()
    np.random.seed(2)
    for _ in range(10):
        batch = spec.transforms(**spec.sampler.generate_train_batch())
        normal, target = batch["inputs"][0], batch["target"]
        assert target.shape == (plan.batch_size, *plan.patch_size)
        assert [x.shape[2:] for x in batch["inputs"]] == [
            tuple(s)
            for s in __import__("autoseg.networks.deepmedic_geometry", fromlist=["x"])
            .segment_shapes(plan.network, plan.patch_size)
            .inputs
        ]
        h = [(r - 1) // 2 for r in rf]
        centre = normal[:, 0, h[0] : h[0] + target.shape[1], h[1] : h[1] + target.shape[2],
                        h[2] : h[2] + target.shape[3]]  # fmt: skip
        np.testing.assert_array_equal(np.maximum(centre - 1, 0), target)


def test_unet_targets_follow_deep_supervision(planned_root: Path) -> None:
    import torch

    from autoseg.trainers.unet_strategy import UNetStrategy, supervision_factors

    plans = load_plans(Workspace(planned_root).plans_json)
    plan = plans.configuration("unet3d")
    seg = np.random.default_rng(0).integers(0, 3, (2, 1, *plan.patch_size)).astype(np.int16)
    batch = {"data": np.zeros((2, 1, *plan.patch_size), np.float32), "seg": seg}
    _, targets = UNetStrategy().to_device(batch, plan, torch.device("cpu"))
    factors = supervision_factors(plan.network)  # type: ignore[arg-type]
    assert len(targets) == len(plan.network.deep_supervision_scales()) == len(factors)
    for (fz, fy, fx), target in zip(factors, targets):
        np.testing.assert_array_equal(target.numpy(), seg[:, 0, ::fz, ::fy, ::fx])
