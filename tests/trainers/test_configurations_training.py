"""unet2d, unet3d_lowres and unet3d_cascade trained by the shared loop on tiny phantoms.

A thick-slice phantom (0.7 x 0.7 x 5 mm) where unet2d is planned and trains; a phantom
planned with a tiny patch (small heuristics, as the other trainer tests use) so that its
patch covers a few percent of the image and the low-resolution stage and the cascade are
planned. The cascade is refused before its first stage's folds exist, then trains on their
out-of-fold predictions, and prediction runs both stages.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from autoseg.data.imageio import read_image
from autoseg.errors import ConfigError
from autoseg.inference.cascade import stage_on_grid
from autoseg.inference.model_archive import export_model, opened_model
from autoseg.inference.predictor import PredictionOptions, Predictor
from autoseg.networks import UNetConfig
from autoseg.planner.plans import load_plans
from autoseg.preprocessing.store import load_preprocessed_case
from autoseg.split_file import parse_splits
from autoseg.trainers.cascade_strategy import CascadeStrategy
from autoseg.trainers.config import TrainConfig, TrainingRequest
from autoseg.trainers.cross_validation import load_source_dataset, run_training
from autoseg.workspace import Workspace

FAST = {"epochs": 1, "iters_per_epoch": 2, "val_iters": 1, "num_workers": 0, "device": "cpu"}
THICK = {
    "num_train_cases": 4,
    "num_test_cases": 0,
    "base_shape": (8, 40, 40),
    "channels": ("T2",),
    "spacing": "thick",
    "seed": 4,
}
LARGE = {
    "num_train_cases": 4,
    "num_test_cases": 1,
    "base_shape": (24, 24, 24),
    "channels": ("T1",),
    "spacing": "iso",
    "seed": 5,
}
TWO_FOLDS = [
    {"train": ["phantom_002", "phantom_003"], "val": ["phantom_000", "phantom_001"]},
    {"train": ["phantom_000", "phantom_001"], "val": ["phantom_002", "phantom_003"]},
]


def _request(config: str, folds: tuple[int | str, ...] = (0,), **changes: Any) -> TrainingRequest:
    return TrainingRequest((config,), folds, TrainConfig(**{**FAST, **changes}))


def _plan(dataset: Path, root: Path, heuristics: dict[str, Any], tmp: Path) -> Workspace:
    from autoseg.planner.workflow import run_plan

    path = tmp / "heuristics.json"
    path.write_text(json.dumps(heuristics))
    workspace = Workspace(root)
    run_plan(dataset, workspace, heuristics_path=path, device="cpu", num_workers=1)
    return workspace


@pytest.fixture(scope="module")
def thick(
    phantom_dataset: Callable[..., Path],
    small_heuristics_values: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Workspace:
    tmp = tmp_path_factory.mktemp("thick")
    workspace = _plan(phantom_dataset(**THICK), tmp / "work", small_heuristics_values, tmp)
    workspace.splits_json.write_text(json.dumps(TWO_FOLDS))
    return workspace


@pytest.fixture(scope="module")
def large(
    phantom_dataset: Callable[..., Path],
    small_heuristics_values: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Workspace:
    """Planned with an 8x8x8 starting patch (a few % of the 24^3 image): the low-resolution
    rule fires on tiny data. Folds: the user's two-fold split."""
    tmp = tmp_path_factory.mktemp("large")
    heuristics = {
        **small_heuristics_values,
        "unet_initial_patch_voxels": 512,
        "unet_min_feature_map": 2,
    }
    workspace = _plan(phantom_dataset(**LARGE), tmp / "work", heuristics, tmp)
    workspace.splits_json.write_text(json.dumps(TWO_FOLDS))
    return workspace


def test_thick_slices_plan_and_train_a_2d_unet(thick: Workspace) -> None:
    plans = load_plans(thick.plans_json)
    config = plans.configuration("unet2d")
    assert isinstance(config.network, UNetConfig) and config.network.slice_axis == 0
    assert config.target_spacing == pytest.approx((5.0, 0.7, 0.7))
    assert config.patch_size[0] == 1
    [result] = run_training(thick, _request("unet2d", final_validation=True))
    assert result.status == "trained"
    summary = json.loads((result.fold_dir / "validation" / "summary.json").read_text())
    cases = {row["case"] for row in summary["metrics"]}
    assert cases and all((result.fold_dir / "validation" / f"{c}.nii.gz").is_file() for c in cases)
    weights = torch.load(result.fold_dir / "checkpoint_final.pt", weights_only=True)["model"]
    assert weights["encoder.0.0.conv.weight"].dim() == 4  # Conv2d: out x in x kY x kX


def test_an_unplanned_configuration_is_refused_with_the_reason(thick: Workspace) -> None:
    with pytest.raises(ConfigError, match=r"'unet3d_lowres' was not planned for this dataset: "
                       r"the unet3d patch covers 100% of the median image"):  # fmt: skip
        run_training(thick, _request("unet3d_lowres"))


def test_large_images_plan_a_low_resolution_stage_and_a_cascade(large: Workspace) -> None:
    plans = load_plans(large.plans_json)
    assert {"unet3d_lowres", "unet3d_cascade"} <= set(plans.configurations)
    lowres, cascade = plans.configuration("unet3d_lowres"), plans.configuration("unet3d_cascade")
    assert cascade.previous_stage == "unet3d_lowres"
    assert lowres.data_identifier != cascade.data_identifier
    assert all(lo > 1.0 for lo in lowres.target_spacing)
    assert large.preprocessed_dir(lowres.data_identifier).is_dir()


def test_the_cascade_trains_on_out_of_fold_first_stage_predictions(
    large: Workspace, tmp_path: Path
) -> None:
    work = Workspace(tmp_path / "work")
    shutil.copytree(large.root, work.root)
    with pytest.raises(ConfigError, match=r"fold\(s\) 0,1 of unet3d_lowres have no final val"):
        run_training(work, _request("unet3d_cascade"))
    assert not work.config_dir("unet3d_cascade").exists()  # refused before training anything
    only = TrainingRequest(("unet3d_cascade", "unet3d_lowres"), (0, 1), TrainConfig(**FAST))
    results = run_training(work, only)
    assert [(r.config_name, r.fold) for r in results] == [
        ("unet3d_lowres", 0),
        ("unet3d_lowres", 1),
        ("unet3d_cascade", 0),
        ("unet3d_cascade", 1),
    ]
    plans = load_plans(work.plans_json)
    splits = parse_splits(json.loads(work.splits_json.read_text()))
    cascade = plans.configuration("unet3d_cascade")
    data_dir = work.preprocessed_dir(cascade.data_identifier)
    for k in range(splits.num_folds):
        for case_id in splits.fold(k).val:
            # each case's input is the lowres prediction of the fold that held it out
            assert case_id not in splits.fold(k).train
            source = work.fold_paths("unet3d_lowres", k).validation / f"{case_id}.nii.gz"
            record = json.loads((work.stage_dir("unet3d_cascade") / f"{case_id}.json").read_text())
            assert record["source"] == str(source)
            properties = load_preprocessed_case(data_dir, case_id).properties
            expected = stage_on_grid(
                np.rint(read_image(source)[0]).astype(np.int64),
                properties,
                anisotropy_threshold=plans.heuristics.anisotropy_threshold,
            )
            stage = np.load(work.stage_dir("unet3d_cascade") / f"{case_id}.npy")
            assert stage.shape == properties.shape_after_resample
            np.testing.assert_array_equal(stage, expected)

    # the cascade's network sees the image and one channel per foreground label
    network = cascade.network
    assert network.in_channels == plans.num_channels + len(plans.foreground_labels)
    weights = torch.load(work.checkpoint_path("unet3d_cascade", 0, "final"), weights_only=True)[
        "model"
    ]
    assert weights["encoder.0.0.conv.weight"].shape[1] == network.in_channels

    # prediction runs both stages: the first stage's every fold, then the cascade
    predictor = Predictor.from_workspace(
        work, "unet3d_cascade", [0], device="cpu", options=PredictionOptions(use_mirroring=False)
    )
    assert len(predictor.stage_networks["unet3d_lowres"]) == 2
    dataset = load_source_dataset(work)
    prediction = predictor.predict_case(dataset.test_cases[0], dataset)
    assert prediction.probabilities.shape[0] == plans.num_outputs
    np.testing.assert_allclose(prediction.probabilities.sum(0), 1.0, atol=1e-4)

    # a model archive of the cascade carries its first stage
    archive = export_model(work, tmp_path / "model.zip", config="unet3d_cascade", folds=[0])
    with zipfile.ZipFile(archive.path) as packed:
        names = set(packed.namelist())
    for k in (0, 1):
        assert f"results/unet3d_lowres/fold_{k}/checkpoint_final.pt" in names
    assert "results/unet3d_cascade/fold_1/checkpoint_final.pt" not in names
    with opened_model(archive.path) as unpacked:
        again = Predictor.from_workspace(
            unpacked, "unet3d_cascade", device="cpu", options=PredictionOptions(False)
        ).predict_case(dataset.test_cases[0], dataset)
    np.testing.assert_allclose(again.probabilities, prediction.probabilities, atol=1e-5)


def test_the_cascade_batch_appends_the_first_stage_as_one_hot_channels() -> None:
    strategy = CascadeStrategy(Path("."), (1, 2))
    labels = np.array([[[[0, 1], [2, 0]]]], dtype=np.int16)  # 1x1x2x2 (B, Z, Y, X)
    stage = np.array([[[[2, 2], [0, 1]]]], dtype=np.int16)
    batch = {
        "data": np.zeros((1, 1, 1, 2, 2), np.float32),
        "seg": np.stack([labels, stage], axis=1),
    }
    config: Any = type(
        "Plan", (), {"network": UNetConfig(in_channels=3, num_classes=3,
            features_per_stage=(2, 4), kernel_sizes=((1, 1, 1),) * 2,
            strides=((1, 1, 1), (1, 1, 1)), deep_supervision=False)}
    )()  # fmt: skip
    inputs, targets = strategy.to_device(batch, config, torch.device("cpu"))
    assert inputs.shape == (1, 3, 1, 2, 2)
    assert inputs[0, 1].tolist() == [[[0.0, 0.0], [0.0, 1.0]]]  # label 1
    assert inputs[0, 2].tolist() == [[[1.0, 1.0], [0.0, 0.0]]]  # label 2
    assert targets[0].tolist() == labels.tolist()  # the labels stay the target


def test_the_first_stage_is_perturbed_in_training_and_the_labels_are_not() -> None:
    from autoseg.trainers.cascade_augmentation import PerturbFirstStage

    np.random.seed(0)
    stage = np.zeros((4, 1, 24, 24, 24), np.int16)
    stage[:, 0, 4:14, 4:14, 4:14] = 1
    stage[:, 0, 16:20, 16:20, 16:20] = 2
    seg = np.concatenate([stage, stage], axis=1)
    out = PerturbFirstStage(p_morphology=1.0, radius=(1, 2), p_remove=1.0)(seg=seg.copy())
    np.testing.assert_array_equal(out["seg"][:, 0], stage[:, 0])  # labels untouched
    changed = [not np.array_equal(out["seg"][b, 1], stage[b, 0]) for b in range(4)]
    assert all(changed)
    assert set(np.unique(out["seg"][:, 1])) <= {0, 1, 2}  # no new values
    none = PerturbFirstStage(p_morphology=0.0, p_remove=0.0)(seg=seg.copy())
    np.testing.assert_array_equal(none["seg"], seg)


def test_a_case_without_an_out_of_fold_prediction_is_refused(tmp_path: Path) -> None:
    from autoseg.trainers.previous_stage import missing_stage_folds, out_of_fold_sources

    work = Workspace(tmp_path / "work")
    folds = [{"train": ["a", "b", "x"], "val": ["c"]}, {"train": ["c", "x"], "val": ["a", "b"]}]
    splits = parse_splits(folds)
    with pytest.raises(ConfigError, match=r"1 case\(s\) are in no validation fold.*\(x\)"):
        out_of_fold_sources(work, "unet3d_lowres", splits, ["a", "b", "c", "x"], "unet3d_cascade")
    assert missing_stage_folds(work, "unet3d_lowres", splits, ["a", "c"], "unet3d_cascade") == [
        0,
        1,
    ]
    assert missing_stage_folds(work, "unet3d_lowres", splits, ["c"], "cascade", coming=[0]) == []
    summary = work.fold_paths("unet3d_lowres", 1).validation / "summary.json"
    summary.parent.mkdir(parents=True)
    summary.write_text("{}")
    assert missing_stage_folds(work, "unet3d_lowres", splits, ["a", "c"], "cascade") == [0]
    with pytest.raises(ConfigError, match="fold 1 has no validation output of a"):
        out_of_fold_sources(work, "unet3d_lowres", splits, ["a"], "unet3d_cascade")


def test_cases_the_split_leaves_out_need_no_first_stage_prediction(
    large: Workspace, tmp_path: Path
) -> None:
    work = Workspace(tmp_path / "work")
    shutil.copytree(large.root, work.root)
    partial = [
        {"train": ["phantom_002"], "val": ["phantom_000", "phantom_001"]},
        {"train": ["phantom_000", "phantom_001"], "val": ["phantom_002"]},
    ]  # phantom_003 is in neither fold: no out-of-fold prediction is needed for it
    work.splits_json.write_text(json.dumps(partial))
    with pytest.raises(ConfigError, match=r"fold\(s\) 0,1 of unet3d_lowres have no final"):
        run_training(work, _request("unet3d_cascade", (0, 1)))
    with pytest.raises(ConfigError, match=r"fold\(s\) 1 of unet3d_lowres have no final"):
        run_training(
            work,
            TrainingRequest(("unet3d_lowres", "unet3d_cascade"), (0,), TrainConfig(**FAST)),
        )  # fold 0 of the cascade also trains on phantom_002, held out by fold 1 only
