"""``autoseg plan`` on generated datasets: plans, preprocessing, skipping and geometry."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from autoseg.cli import main
from autoseg.data.case_io import load_case
from autoseg.data.formats import load_dataset
from autoseg.planner.fingerprint_io import load_fingerprint
from autoseg.planner.heuristics import PlannerHeuristics
from autoseg.planner.planner import compute_budget_gflops, plan_dataset
from autoseg.planner.plans import HardwareTarget, load_plans, preprocessing_settings
from autoseg.planner.workflow import run_plan
from autoseg.preprocessing.crop import uncrop
from autoseg.preprocessing.resample import resample_label
from autoseg.preprocessing.store import load_preprocessed_case
from autoseg.workspace import Workspace

SMALL = {"num_train_cases": 4, "num_test_cases": 0, "base_shape": (20, 24, 24)}
VARIANTS = {
    "iso_mri_2ch": dict(SMALL, spacing="iso", channels=("T1", "FLAIR")),
    "aniso_ct_roi": dict(
        SMALL, spacing="aniso", channels=("CT",), with_roi=True, base_shape=(8, 40, 40)
    ),
    "varied_mri_1ch_roi": dict(SMALL, spacing="varied", channels=("T1",), with_roi=True),
}


@pytest.fixture(scope="module")
def planned(phantom_dataset: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Plan each variant once: name -> (dataset path, workspace)."""
    result = {}
    for name, spec in VARIANTS.items():
        dataset = phantom_dataset(**spec)
        workspace = Workspace(tmp_path_factory.mktemp(name))
        run_plan(dataset, workspace, device="cpu", num_workers=1)
        result[name] = (dataset, workspace)
    return result


@pytest.mark.parametrize("name", list(VARIANTS))
def test_plans_fit_the_target_and_preprocessing_is_complete(planned, name: str) -> None:  # type: ignore[no-untyped-def]
    dataset_path, workspace = planned[name]
    plans = load_plans(workspace.plans_json)
    dataset = load_dataset(dataset_path)
    limit = plans.hardware.memory_target_bytes * plans.heuristics.memory_safety_margin
    assert set(plans.configurations) == {"unet3d", "unet2d", "deepmedic"}
    assert [n for n, d in plans.decisions.items() if d.planned] == list(plans.configurations)
    for config in plans.configurations.values():
        assert 0 < config.estimated_memory_bytes <= limit
        budget = compute_budget_gflops(
            config.network.kind, config.precision, plans.hardware, plans.heuristics
        )
        assert budget is not None and config.estimated_gflops_per_iteration <= budget
        folder = workspace.preprocessed_dir(config.data_identifier)
        for case in dataset.cases:
            pre = load_preprocessed_case(folder, case.case_id)
            assert pre.image.dtype == np.float32
            assert pre.image.shape == (plans.num_channels, *pre.properties.shape_after_resample)
            assert set(np.unique(pre.seg)) <= set(plans.labels.values())
            assert (pre.roi is not None) == plans.use_roi_mask
            for value, coords in pre.locations.items():
                if len(coords):
                    assert np.all(pre.seg[tuple(coords.T)] == value)
    assert plans.use_roi_mask == dataset.has_roi


@pytest.mark.parametrize("name", list(VARIANTS))
def test_preprocessing_settings_come_from_the_plan(planned, name: str) -> None:  # type: ignore[no-untyped-def]
    plans = load_plans(planned[name][1].plans_json)
    for config_name, config in plans.configurations.items():
        settings = preprocessing_settings(plans, config_name)
        assert settings.data_identifier == config.data_identifier
        assert settings.target_spacing == config.target_spacing
        assert settings.normalization == plans.normalization
        assert settings.use_roi_mask == plans.use_roi_mask
        assert settings.anisotropy_threshold == plans.heuristics.anisotropy_threshold
        assert settings.label_values == tuple(sorted(plans.labels.values()))
    assert plans.foreground_labels == tuple(v for v in plans.label_values if v != 0)


def test_ct_channel_gets_dataset_wide_clipping(planned) -> None:  # type: ignore[no-untyped-def]
    plans = load_plans(planned["aniso_ct_roi"][1].plans_json)
    (norm,) = plans.normalization
    assert norm.scheme == "ct" and norm.lower is not None and norm.lower < norm.upper  # type: ignore[operator]
    mri = load_plans(planned["iso_mri_2ch"][1].plans_json)
    assert [n.scheme for n in mri.normalization] == ["zscore", "zscore"]


def test_anisotropic_data_gets_in_plane_kernels_and_subsampling(planned) -> None:  # type: ignore[no-untyped-def]
    plans = load_plans(planned["aniso_ct_roi"][1].plans_json)
    unet = plans.configurations["unet3d"]
    spacing = unet.target_spacing
    assert spacing[0] > 3 * max(spacing[1:])
    assert unet.network.kernel_sizes[0] == (1, 3, 3)  # type: ignore[union-attr]
    assert unet.network.strides[1][0] == 1  # type: ignore[union-attr]
    assert unet.augmentation.rotate_in_plane_only
    deepmedic = plans.configurations["deepmedic"].network
    assert all(p.factor[0] == 1 for p in deepmedic.subsampled)  # type: ignore[union-attr]


@pytest.mark.parametrize("name", ["iso_mri_2ch", "aniso_ct_roi"])
def test_preprocessing_round_trips_geometry(planned, name: str) -> None:  # type: ignore[no-untyped-def]
    dataset_path, workspace = planned[name]
    plans = load_plans(workspace.plans_json)
    dataset = load_dataset(dataset_path)
    config = plans.configurations["unet3d"]
    for case in dataset.cases[:2]:
        pre = load_preprocessed_case(
            workspace.preprocessed_dir(config.data_identifier), case.case_id
        )
        props = pre.properties
        back = resample_label(
            np.asarray(pre.seg),
            props.target_spacing,
            props.original.spacing,
            new_shape=props.shape_after_crop,
        )
        restored = uncrop(back, props.crop_box, props.original.shape)
        original = load_case(case, dataset).label
        assert restored.shape == original.shape == props.original.shape  # type: ignore[union-attr]
        overlap = np.logical_and(restored > 0, original > 0).sum()  # type: ignore[operator]
        dice = 2 * overlap / ((restored > 0).sum() + (original > 0).sum())  # type: ignore[operator]
        assert dice > 0.9


def _target(memory_gb: float) -> HardwareTarget:
    return HardwareTarget("cuda", "test", int(memory_gb * 1e9), "--gpu-memory", 8)


@pytest.mark.parametrize("name", ["iso_mri_2ch", "aniso_ct_roi"])
def test_larger_targets_never_give_smaller_plans(planned, name: str) -> None:  # type: ignore[no-untyped-def]
    fingerprint = load_fingerprint(planned[name][1].fingerprint_json)
    # Scale the shapes up so the memory target, not the image size, limits the patch.
    scaled = [
        c.__class__(
            **{
                **c.__dict__,
                "shape": tuple(8 * v for v in c.shape),
                "shape_after_crop": tuple(8 * v for v in c.shape_after_crop),
            }
        )
        for c in fingerprint.cases
    ]
    fingerprint = fingerprint.__class__(**{**fingerprint.__dict__, "cases": tuple(scaled)})
    heuristics = PlannerHeuristics()
    previous: dict[str, int] = {}
    for memory_gb in (4, 8, 11, 24, 40, 80):
        plans = plan_dataset(fingerprint, heuristics, _target(memory_gb))
        for config_name, config in plans.configurations.items():
            assert config.estimated_memory_bytes <= memory_gb * 1e9
            volume = int(np.prod(config.patch_size)) * config.batch_size
            assert volume >= previous.get(config_name, 0), (config_name, memory_gb)
            previous[config_name] = volume


def test_rerun_skips_and_changes_redo_only_what_depends_on_them(
    phantom_dataset: Callable[..., Path], tmp_path: Path
) -> None:
    dataset = Path(shutil.copytree(phantom_dataset(**VARIANTS["iso_mri_2ch"]), tmp_path / "ds"))
    workspace = Workspace(tmp_path / "work")
    first = run_plan(dataset, workspace, device="cpu")
    assert not first.fingerprint_reused and sum(first.preprocessing.processed.values()) == 4
    second = run_plan(dataset, workspace, device="cpu")
    assert second.fingerprint_reused and second.plans_reused
    assert sum(second.preprocessing.processed.values()) == 0
    # New heuristics that change the target spacing: same fingerprint, new plans and data.
    heuristics = tmp_path / "h.json"
    heuristics.write_text(json.dumps({"spacing_percentile": 10}))
    third = run_plan(dataset, workspace, device="cpu", heuristics_path=heuristics)
    assert third.fingerprint_reused and not third.plans_reused
    # A killed run: one case's properties missing -> only that case is redone.
    plans = load_plans(workspace.plans_json)
    folder = workspace.preprocessed_dir(plans.configurations["unet3d"].data_identifier)
    victim = sorted(folder.glob("*.json"))[0]
    victim.unlink()
    fourth = run_plan(dataset, workspace, device="cpu", heuristics_path=heuristics)
    assert sum(fourth.preprocessing.processed.values()) == 1
    # A changed image: fingerprint and that case are recomputed.
    image = sorted((dataset / "imagesTr").iterdir())[0]
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    fifth = run_plan(dataset, workspace, device="cpu", heuristics_path=heuristics)
    assert not fifth.fingerprint_reused
    assert sum(fifth.preprocessing.processed.values()) >= 1


def test_plan_cli_prints_a_summary_and_bad_input_exits_2(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "w"
    assert (
        main(["plan", str(tiny_dataset), "--work", str(work), "--device", "cpu", "-np", "2"]) == 0
    )
    out = capsys.readouterr().out
    assert "unet3d" in out and "deepmedic" in out and "patch" in out
    assert main(["plan", str(tmp_path / "missing"), "--work", str(work)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing" in err
    assert main(["plan", str(tiny_dataset), "--gpu-memory", "lots"]) == 2


def test_region_based_sparse_dataset_plans_regions_and_the_ignore_label(
    phantom_dataset: Callable[..., Path], tmp_path: Path
) -> None:
    """A BraTS-like phantom with sparse slices: one output per region, the ignore label
    neither a class nor a sampling target, and the plan records both (label plans do not)."""
    spec = dict(SMALL, channels=("FLAIR", "T1", "T1CE", "T2"), nested_classes=3)
    dataset_path = phantom_dataset(**spec, rare_class=False, regions=True, sparse_slices=3)
    workspace = Workspace(tmp_path / "work")
    run_plan(dataset_path, workspace, device="cpu", num_workers=1)
    data = json.loads(workspace.plans_json.read_text())
    assert data["regions_class_order"] == [1, 2, 3] and data["ignore_label"] == 4
    assert data["regions"] == {
        "whole tumour": [1, 2, 3],
        "tumour core": [2, 3],
        "enhancing tumour": [3],
    }
    plans = load_plans(workspace.plans_json)
    assert plans.region_based and plans.num_outputs == 3 and plans.num_classes == 4
    assert plans.training_regions == ((1, 2, 3), (2, 3), (3,))
    assert plans.scored_labels == () and plans.label_values == (0, 1, 2, 3)
    assert [t.key for t in plans.score_targets] == list(data["regions"])
    assert set(plans.class_sampling_weights) == {1, 2, 3}
    for config in plans.configurations.values():
        assert config.network.num_classes == 3  # one sigmoid output per region
        folder = workspace.preprocessed_dir(config.data_identifier)
        case = load_preprocessed_case(folder, "phantom_001")
        assert set(case.locations) == {0, 1, 2, 3}  # no ignore-label sampling targets
        assert 4 not in case.properties.classes_present
        assert case.seg is not None and 4 in np.unique(case.seg)  # kept for the loss to skip
    fingerprint = load_fingerprint(workspace.fingerprint_json)
    assert fingerprint.labels["ignore"] == 4
    assert type(plans).from_json(plans.to_json()) == plans
    label_plans = load_plans(planned_label_plans(phantom_dataset, tmp_path))
    assert not label_plans.region_based and label_plans.ignore_label is None
    text = (tmp_path / "labels" / "plans.json").read_text()
    assert "regions_class_order" not in text and "ignore_label" not in text


def planned_label_plans(phantom_dataset: Callable[..., Path], tmp_path: Path) -> Path:
    workspace = Workspace(tmp_path / "labels")
    run_plan(phantom_dataset(**SMALL), workspace, device="cpu", num_workers=1)
    return workspace.plans_json
