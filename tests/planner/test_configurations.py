"""The U-Net configurations: unet2d, unet3d_lowres, unet3d_cascade, and why each is planned."""

from __future__ import annotations

import json
import math

import pytest

from autoseg.frozendict import FrozenDict
from autoseg.networks import UNetConfig
from autoseg.planner.compute import estimate_training_gflops
from autoseg.planner.fingerprint import CaseFingerprint, Fingerprint, IntensityStats
from autoseg.planner.heuristics import PlannerHeuristics
from autoseg.planner.memory import estimate_training_memory
from autoseg.planner.planner import compute_budget_gflops, plan_dataset
from autoseg.planner.plans import CpuSpeed, HardwareTarget, Plans
from autoseg.planner.unet_plans import slice_axis_for

GPU = HardwareTarget("cuda", "test", 11 * 10**9, "--gpu-memory", 8)
CPU = HardwareTarget(
    "cpu",
    "test",
    6 * 10**9,
    "cpu-ram",
    2,
    CpuSpeed({"unet": {"fp32": 60.0}, "deepmedic": {"fp32": 40.0}}, 1, 0.6),
)


def _fingerprint(
    spacing: tuple[float, float, float], shape: tuple[int, int, int], classes: int = 3
) -> Fingerprint:
    stats = (IntensityStats(0.0, 1.0, 0.0, -2.0, 2.0, -3.0, 3.0),)
    voxels = FrozenDict({v: 10_000 if v == 0 else 1_000 for v in range(classes)})
    case = CaseFingerprint("c", spacing, shape, shape, stats, voxels, FrozenDict(), FrozenDict())  # type: ignore[arg-type]
    total = sum(voxels.values())
    return Fingerprint(
        "Example", ("T2",), FrozenDict({f"class_{v}": v for v in range(classes)}), (case,) * 20,
        stats, FrozenDict({v: n / total for v, n in voxels.items()}),
        FrozenDict({v: 1.0 for v in range(1, classes)}), spacing, shape,  # type: ignore[arg-type]
    )  # fmt: skip


def _check_fits(plans: Plans) -> None:
    limit = plans.hardware.memory_target_bytes * plans.heuristics.memory_safety_margin
    for config in plans.configurations.values():
        assert config.estimated_memory_bytes <= limit
        assert config.estimated_memory_bytes == estimate_training_memory(
            config.network, config.patch_size, config.batch_size, config.precision
        )
        budget = compute_budget_gflops(
            config.network.kind, config.precision, plans.hardware, plans.heuristics
        )
        if budget is not None:
            assert config.estimated_gflops_per_iteration <= budget, config.name
            assert config.estimated_gflops_per_iteration == pytest.approx(
                estimate_training_gflops(config.network, config.patch_size, config.batch_size)
            )


@pytest.mark.parametrize("hardware", [GPU, CPU], ids=["gpu", "cpu"])
def test_thick_slices_get_a_2d_unet_across_the_slices(hardware: HardwareTarget) -> None:
    plans = plan_dataset(
        _fingerprint((5.0, 0.7, 0.7), (24, 320, 320)), PlannerHeuristics(), hardware
    )
    config = plans.configurations["unet2d"]
    network = config.network
    assert isinstance(network, UNetConfig) and network.kind == "unet2d"
    assert network.slice_axis == 0 and all(len(k) == 2 for k in network.kernel_sizes)
    assert config.patch_size[0] == 1 and min(config.patch_size[1:]) >= 64
    assert config.batch_size >= plans.heuristics.unet2d_min_batch_size
    assert config.batch_size > plans.configurations["unet3d"].batch_size  # 2D batches are larger
    assert config.data_identifier == plans.configurations["unet3d"].data_identifier
    assert config.augmentation.mirror_axes == (1, 2)
    assert config.augmentation.rotate_in_plane_only
    assert config.augmentation.rotation_degrees == (180.0, 0.0, 0.0)
    assert config.batch_dice
    lowres = "unet3d_lowres" in plans.configurations  # the CPU's small patch: planned there
    assert plans.configurations["unet3d"].batch_dice == lowres == (hardware.device == "cpu")
    decision = plans.decisions["unet2d"]
    assert decision.planned and "slices across Z, the coarsest axis" in decision.reason
    _check_fits(plans)


def test_the_slice_axis_is_the_coarsest_or_the_first() -> None:
    assert slice_axis_for((5.0, 0.7, 0.7)) == 0
    assert slice_axis_for((0.8, 3.0, 0.8)) == 1
    assert slice_axis_for((1.0, 1.0, 1.0)) == 0
    assert slice_axis_for((1.0, 1.0004, 1.0)) == 0  # within 0.1 %: isotropic
    plans = plan_dataset(_fingerprint((1.0, 1.0, 1.0), (64, 64, 64)), PlannerHeuristics(), GPU)
    assert "no axis is coarser, so the first" in plans.decisions["unet2d"].reason


def test_small_images_get_no_low_resolution_stage() -> None:
    plans = plan_dataset(_fingerprint((1.0, 1.0, 1.0), (40, 56, 40)), PlannerHeuristics(), GPU)
    assert set(plans.configurations) == {"unet3d", "unet2d", "deepmedic"}
    lowres, cascade = plans.decisions["unet3d_lowres"], plans.decisions["unet3d_cascade"]
    assert not lowres.planned and "covers 100% of the median image" in lowres.reason
    assert not cascade.planned and "no low-resolution stage" in cascade.reason


@pytest.mark.parametrize("hardware", [GPU, CPU], ids=["gpu", "cpu"])
def test_large_images_get_a_low_resolution_stage_and_a_cascade(hardware: HardwareTarget) -> None:
    shape = (400, 512, 512)  # abdominal CT at 0.8 mm
    heuristics = PlannerHeuristics()
    plans = plan_dataset(_fingerprint((0.8, 0.8, 0.8), shape), heuristics, hardware)
    fullres, lowres = plans.configurations["unet3d"], plans.configurations["unet3d_lowres"]
    cascade = plans.configurations["unet3d_cascade"]
    median = math.prod(shape)
    assert math.prod(fullres.patch_size) / median < heuristics.lowres_patch_fraction
    assert all(lo > full for lo, full in zip(lowres.target_spacing, fullres.target_spacing))
    assert lowres.data_identifier != fullres.data_identifier
    scale = math.prod(f / lo for f, lo in zip(fullres.target_spacing, lowres.target_spacing))
    coverage = math.prod(lowres.patch_size) / (median * scale)
    assert coverage >= heuristics.lowres_patch_fraction
    # one step less would not have covered enough (the spacing grows no further than needed)
    assert coverage < heuristics.lowres_patch_fraction * heuristics.lowres_spacing_step**3 * 1.5
    assert cascade.previous_stage == "unet3d_lowres" and lowres.previous_stage is None
    # nnU-Net's Dice rule: per batch at full resolution when a low-resolution stage exists
    assert fullres.batch_dice and cascade.batch_dice and not lowres.batch_dice
    # the unet3d patch, unless the extra channels no longer fit (the CPU's compute budget)
    assert math.prod(cascade.patch_size) <= math.prod(fullres.patch_size)
    assert cascade.patch_size == fullres.patch_size or hardware.device == "cpu"
    assert cascade.data_identifier == fullres.data_identifier
    assert isinstance(cascade.network, UNetConfig) and isinstance(fullres.network, UNetConfig)
    assert cascade.network.in_channels == fullres.network.in_channels + 2  # labels 1, 2
    assert plans.decisions["unet3d_lowres"].planned and plans.decisions["unet3d_cascade"].planned
    assert "less than lowres_patch_fraction 25%" in plans.decisions["unet3d_lowres"].reason
    _check_fits(plans)


def test_the_lowres_rule_is_a_tunable_heuristic() -> None:
    fingerprint = _fingerprint((0.8, 0.8, 0.8), (400, 512, 512))
    never = PlannerHeuristics(lowres_patch_fraction=1e-4)
    assert "unet3d_lowres" not in plan_dataset(fingerprint, never, GPU).configurations
    strict = PlannerHeuristics(lowres_min_voxel_reduction=1e6)
    plans = plan_dataset(fingerprint, strict, GPU)
    reason = plans.decisions["unet3d_lowres"].reason
    assert "unet3d_lowres" not in plans.configurations and "lowres_min_voxel_reduction" in reason


def test_anisotropic_lowres_grows_the_fine_axes_first() -> None:
    plans = plan_dataset(_fingerprint((5.0, 0.7, 0.7), (80, 512, 512)), PlannerHeuristics(), GPU)
    lowres = plans.configurations["unet3d_lowres"]
    z, y, x = lowres.target_spacing
    assert z == pytest.approx(5.0) and y == x and 0.7 < y <= 2.5 + 1e-6


def test_plans_round_trip_with_decisions_and_stages() -> None:
    plans = plan_dataset(_fingerprint((0.8, 0.8, 0.8), (400, 512, 512)), PlannerHeuristics(), GPU)
    data = json.loads(plans.to_json())
    assert list(data["decisions"]) == [
        "unet3d",
        "unet2d",
        "unet3d_lowres",
        "unet3d_cascade",
        "deepmedic",
    ]
    assert data["configurations"]["unet3d_cascade"]["previous_stage"] == "unet3d_lowres"
    assert "previous_stage" not in data["configurations"]["unet3d"]
    assert data["configurations"]["unet2d"]["network"]["kind"] == "unet2d"
    assert Plans.from_json(plans.to_json()) == plans


def test_trainer_heuristics_are_planned_per_family() -> None:
    heuristics = PlannerHeuristics(
        unet_loss="generalized_dice_ce", deepmedic_loss="dice_ce", augmentation_strength=0.5
    )
    plans = plan_dataset(_fingerprint((5.0, 0.7, 0.7), (24, 320, 320)), heuristics, CPU)
    unets = [c for c in plans.configurations.values() if c.network.kind != "deepmedic"]
    assert {"unet3d", "unet2d"} <= {c.name for c in unets}
    assert all(c.loss == "generalized_dice_ce" for c in unets)
    assert plans.configurations["deepmedic"].loss == "dice_ce"
    defaults = plan_dataset(_fingerprint((5.0, 0.7, 0.7), (24, 320, 320)), PlannerHeuristics(), CPU)
    for name, config in plans.configurations.items():
        weak, full = config.augmentation, defaults.configurations[name].augmentation
        assert weak.p_rotation == pytest.approx(full.p_rotation / 2)
        assert weak.p_low_resolution == pytest.approx(full.p_low_resolution / 2)
        assert weak.mirror_axes == full.mirror_axes and weak.scale_range == full.scale_range
    again = Plans.from_dict(json.loads(json.dumps(plans.to_dict())))
    assert again.configurations["unet3d"].loss == "generalized_dice_ce"


def test_augmentation_strength_caps_probabilities_at_one() -> None:
    strong = PlannerHeuristics(augmentation_strength=10.0)
    plans = plan_dataset(_fingerprint((1.0, 1.0, 1.0), (64, 64, 64)), strong, CPU)
    augmentation = plans.configurations["unet3d"].augmentation
    probabilities = [v for k, v in augmentation.to_dict().items() if k.startswith("p_")]
    assert probabilities and all(p == 1.0 for p in probabilities)


def test_plans_without_a_loss_train_with_the_family_default() -> None:
    plans = plan_dataset(_fingerprint((1.0, 1.0, 1.0), (64, 64, 64)), PlannerHeuristics(), CPU)
    data = plans.to_dict()
    for config in data["configurations"].values():
        del config["loss"]  # plans.json written before plans named the loss
    assert all(c.loss is None for c in Plans.from_dict(data).configurations.values())
    data["configurations"]["unet3d"]["loss"] = "dcie"
    with pytest.raises(Exception, match="unknown loss 'dcie'"):
        Plans.from_dict(data)


def test_plans_from_before_the_newer_heuristics_still_load() -> None:
    """A workspace planned and trained before the loss, augmentation-strength and batch-Dice
    rules existed (same plans schema) still predicts: what those plans did is filled in."""
    plans = plan_dataset(_fingerprint((1.0, 1.0, 1.0), (64, 64, 64)), PlannerHeuristics(), CPU)
    data = json.loads(json.dumps(plans.to_dict()))
    for key in (
        "unet_loss",
        "deepmedic_loss",
        "augmentation_strength",
        "cpu_unet_min_patch_coverage",
        "cpu_unet_min_base_features",
    ):
        del data["heuristics"][key]
    for config in data["configurations"].values():
        del config["loss"], config["batch_dice"]
    again = Plans.from_dict(data)
    assert again.heuristics.deepmedic_loss == "ce"  # what DeepMedic trained with then
    assert again.heuristics.augmentation_strength == 1.0
    assert again.heuristics.cpu_unet_min_patch_coverage == 0.0  # never narrowed then
    assert not any(c.batch_dice for c in again.configurations.values())
    del data["heuristics"]["unet_lr"]  # a heuristic that plans of this schema always had
    with pytest.raises(Exception, match="missing keys: unet_lr"):
        Plans.from_dict(data)


def _stage0(plans: Plans, name: str) -> int:
    network = plans.configurations[name].network
    assert isinstance(network, UNetConfig)
    return network.features_per_stage[0]


def test_a_cpu_unet_narrows_when_its_patch_would_see_too_little() -> None:
    """On a CPU the compute budget shrinks the patch of a wide U-Net; where that patch would
    cover less than cpu_unet_min_patch_coverage of the median image, the width halves (down
    to cpu_unet_min_base_features) and the patch grows back."""
    brain = _fingerprint((1.0, 1.0, 1.0), (138, 169, 138))
    wide = plan_dataset(brain, PlannerHeuristics(cpu_unet_min_patch_coverage=0.0), CPU)
    plans = plan_dataset(brain, PlannerHeuristics(), CPU)
    assert _stage0(wide, "unet3d") == 32 and _stage0(plans, "unet3d") == 16
    narrow = plans.configurations["unet3d"].network
    assert isinstance(narrow, UNetConfig) and max(narrow.features_per_stage) <= 160
    median = math.prod(brain.median_shape_after_crop)
    wide_cover = math.prod(wide.configurations["unet3d"].patch_size) / median
    narrow_cover = math.prod(plans.configurations["unet3d"].patch_size) / median
    assert wide_cover < 0.25 and narrow_cover > 2 * wide_cover
    reason = plans.decisions["unet3d"].reason
    assert f"at 32→320 the patch covered {wide_cover:.0%}" in reason
    assert reason.endswith("cpu_unet_min_base_features 16)") and "16→160 features" in reason
    # The cascade takes unet3d's network; the low-resolution stage keeps the full width, as
    # its coarser spacing gives it the coverage.
    assert _stage0(plans, "unet3d_cascade") == 16 and _stage0(plans, "unet3d_lowres") == 32
    _check_fits(plans)
    # Down to cpu_unet_min_base_features, never below, and never wider than asked for.
    eight = PlannerHeuristics(cpu_unet_min_base_features=8)
    assert _stage0(plan_dataset(brain, eight, CPU), "unet3d") == 8
    twelve = PlannerHeuristics(cpu_unet_base_features=12, cpu_unet_max_features=96)
    assert _stage0(plan_dataset(brain, twelve, CPU), "unet3d") == 12


def test_a_cpu_unet_that_sees_enough_keeps_its_width() -> None:
    """Hippocampus-sized images: the patch covers the image at 32 features, so no narrowing;
    a 2D U-Net judges its coverage on the median slice; a GPU plan never narrows."""
    small = plan_dataset(_fingerprint((1.0, 1.0, 1.0), (36, 50, 35)), PlannerHeuristics(), CPU)
    assert _stage0(small, "unet3d") == 32 and _stage0(small, "unet2d") == 32
    assert "features" not in small.decisions["unet3d"].reason
    ct = _fingerprint((0.8, 0.8, 0.8), (400, 512, 512))
    cpu = plan_dataset(ct, PlannerHeuristics(), CPU)
    slice_cover = math.prod(cpu.configurations["unet2d"].patch_size) / (512 * 512)
    assert _stage0(cpu, "unet2d") == 16 and "of the median slice" in cpu.decisions["unet2d"].reason
    assert slice_cover >= 0.25 or "16→160" in cpu.decisions["unet2d"].reason
    gpu = plan_dataset(ct, PlannerHeuristics(unet_min_batch_size=2), GPU)
    assert _stage0(gpu, "unet3d") == 32 and "features" not in gpu.decisions["unet3d"].reason


def test_the_width_rule_reaches_the_plan_summary() -> None:
    from autoseg.planner.summary import format_plan_summary
    from autoseg.planner.workflow import PlanReport, PreprocessingReport

    brain = plan_dataset(_fingerprint((1.0, 1.0, 1.0), (138, 169, 138)), PlannerHeuristics(), CPU)
    lines = format_plan_summary(PlanReport(brain, False, False, PreprocessingReport({}, {})))
    narrowed = [x for x in lines.splitlines() if x.startswith("unet3d: always planned")]
    assert len(narrowed) == 1 and "16→160 features (at 32→320 the patch covered" in narrowed[0]
    small = plan_dataset(_fingerprint((1.0, 1.0, 1.0), (36, 50, 35)), PlannerHeuristics(), CPU)
    text = format_plan_summary(PlanReport(small, False, False, PreprocessingReport({}, {})))
    assert "features (" not in text
