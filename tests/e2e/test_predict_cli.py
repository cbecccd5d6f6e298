"""``autoseg predict`` and ``autoseg export-model`` through ``cli.main``: geometry of oblique,
non-RAS, anisotropic and NRRD inputs, bad inputs, skip/overwrite, failures of single cases,
best.json ensembles, model archives and DeepMedic feature maps.

The workspace is planned by ``autoseg plan`` on the tiny phantom; its networks are then
shrunk (plans are data) and checkpoints of untrained networks are saved, so every
prediction takes a fraction of a second on the CPU.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from autoseg.cli import main
from autoseg.data.geometry import Geometry
from autoseg.data.imageio import read_image, write_image
from autoseg.inference.checkpoint import save_checkpoint
from autoseg.networks import (
    DeepMedicConfig,
    PathwayConfig,
    SubsampledPathwayConfig,
    UNetConfig,
    build_network,
)
from autoseg.planner.plans import Plans, load_plans
from autoseg.workspace import Workspace

STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")
pytestmark = pytest.mark.e2e
K3 = (3, 3, 3)
CASE = "phantom_006"
HEADER_KEYS = (
    "dim",
    "pixdim",
    "qform_code",
    "sform_code",
    "quatern_b",
    "quatern_c",
    "quatern_d",
    "qoffset_x",
    "qoffset_y",
    "qoffset_z",
    "srow_x",
    "srow_y",
    "srow_z",
    "xyzt_units",
)


def tiny_plans(plans: Plans) -> Plans:
    c, k = plans.num_channels, plans.num_classes
    unet = UNetConfig(
        in_channels=c,
        num_classes=k,
        features_per_stage=(4, 8),
        kernel_sizes=(K3, K3),
        strides=((1, 1, 1), (2, 2, 2)),
        convs_per_stage=1,
    )
    deepmedic = DeepMedicConfig(
        in_channels=c,
        num_classes=k,
        normal=PathwayConfig(features=(4, 4), kernels=(K3, K3)),
        subsampled=(SubsampledPathwayConfig(factor=(3, 3, 3), features=(4,), kernels=(K3,)),),
        fc_features=(6,),
        dropout=(0.0, 0.0),
    )
    configs = {
        "unet3d": dataclasses.replace(
            plans.configuration("unet3d"), network=unet, inference_patch_size=(16, 16, 16)
        ),
        "deepmedic": dataclasses.replace(
            plans.configuration("deepmedic"), network=deepmedic, inference_patch_size=(12, 12, 12)
        ),
    }
    return dataclasses.replace(plans, configurations=configs)


@pytest.fixture(scope="module")
def trained(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Workspace]:
    """(dataset, workspace planned by the CLI with folds 0 and 1 of both configurations)."""
    work = tmp_path_factory.mktemp("predict_cli") / "work"
    assert main(["-q", "plan", str(tiny_dataset), "--work", str(work), "--device", "cpu"]) == 0
    workspace = Workspace(work)
    plans = tiny_plans(load_plans(workspace.plans_json))
    plans.save(workspace.plans_json)
    for index, config in enumerate(plans.configurations):
        for fold in (0, 1):
            torch.manual_seed(10 * index + fold)
            network = build_network(plans.configuration(config).network)
            save_checkpoint(
                workspace.fold_dir(config, fold) / "checkpoint_final.pt",
                {
                    "model": network.state_dict(),
                    "state_json": "{}",
                    "plans_json": plans.to_json(),
                    "train_config_json": "{}",
                    "configuration": config,
                    "fold": str(fold),
                },
            )
    return tiny_dataset, workspace


def predict(workspace: Workspace | None, inputs: list[Path], out: Path, *extra: str) -> int:
    source = ["--work", str(workspace.root)] if workspace is not None else []
    # one torch thread: much faster on a busy shared CPU; ``extra`` may override -np
    argv = ["predict", "-i", *map(str, inputs), "-o", str(out), *source, "--threads", "1"]
    argv += ["-np", "0", *extra]
    return main(argv)


def rewrite_nifti(source: Path, target: Path, affine: np.ndarray) -> None:
    data = np.asarray(nib.load(source).dataobj)
    image = nib.Nifti1Image(data, affine)
    image.header.set_qform(affine, code=1)
    image.header.set_sform(affine, code=2)
    target.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, str(target))


def affine(kind: str) -> np.ndarray:
    result = np.eye(4)
    if kind == "oblique":
        a = 0.35
        rotation = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
        result[:3, :3] = rotation * np.array([1.1, 0.9, 1.3])
    elif kind == "non-ras":  # i -> -x (L), j -> -z, k -> +y: neither RAS nor axis aligned order
        result[:3, :3] = np.array([[-0.8, 0, 0], [0, 0, 1.2], [0, -0.7, 0]])
    else:  # anisotropic: 4 mm slices, 0.75 mm in plane
        result[:3, :3] = np.diag([0.75, 0.75, 4.0])
    result[:3, 3] = (-20.0, 35.5, 12.25)
    return result


@pytest.mark.parametrize("kind", ["oblique", "non-ras", "anisotropic"])
def test_label_maps_keep_the_input_header(
    tmp_path: Path, trained: tuple[Path, Workspace], kind: str
) -> None:
    dataset, workspace = trained
    for channel in (0, 1):
        name = f"{CASE}_{channel:04d}.nii.gz"
        rewrite_nifti(dataset / "imagesTs" / name, tmp_path / "in" / name, affine(kind))
    args = ["--config", "unet3d", "--no-tta", "--folds", "0"]
    assert predict(workspace, [tmp_path / "in"], tmp_path / "out", *args) == 0
    written = nib.load(tmp_path / "out" / f"{CASE}.nii.gz")
    reference = nib.load(tmp_path / "in" / f"{CASE}_0000.nii.gz")
    assert written.shape == reference.shape
    for key in HEADER_KEYS:
        np.testing.assert_array_equal(written.header[key], reference.header[key], err_msg=key)
    np.testing.assert_array_equal(written.affine, reference.affine)
    labels = np.asarray(written.dataobj)
    assert np.issubdtype(labels.dtype, np.integer) and labels.max() < 4


def test_nrrd_input_gives_nrrd_output_on_the_same_grid(
    tmp_path: Path, trained: tuple[Path, Workspace]
) -> None:
    dataset, workspace = trained
    direction = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    for channel in (0, 1):
        array, geometry = read_image(dataset / "imagesTs" / f"{CASE}_{channel:04d}.nii.gz")
        oblique = Geometry(geometry.shape, (2.5, 0.9, 1.1), (3.0, -4.0, 5.0), direction.ravel())  # type: ignore[arg-type]
        write_image(tmp_path / "in" / f"{CASE}_{channel:04d}.nrrd", array, oblique)
    args = ["--config", "deepmedic", "--no-tta", "--folds", "1"]
    assert predict(workspace, [tmp_path / "in"], tmp_path / "out", *args) == 0
    out = sitk.ReadImage(str(tmp_path / "out" / f"{CASE}.nrrd"))
    ref = sitk.ReadImage(str(tmp_path / "in" / f"{CASE}_0000.nrrd"))
    assert out.GetSize() == ref.GetSize()
    assert out.GetSpacing() == ref.GetSpacing()
    assert out.GetOrigin() == ref.GetOrigin()
    assert out.GetDirection() == ref.GetDirection()


def copy_case(dataset: Path, folder: Path, case: str = CASE) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for channel in (0, 1):
        name = f"{case}_{channel:04d}.nii.gz"
        shutil.copy(dataset / "imagesTs" / name, folder / name)
        paths.append(folder / name)
    return paths


def test_skip_existing_and_overwrite(
    tmp_path: Path, trained: tuple[Path, Workspace], capsys: pytest.CaptureFixture[str]
) -> None:
    dataset, workspace = trained
    images, out = dataset / "imagesTs", tmp_path / "out"
    assert predict(workspace, [images], out, "--config", "unet3d", "--no-tta") == 0
    assert "predicted 2 case(s)" in capsys.readouterr().out
    stamp = (out / f"{CASE}.nii.gz").stat().st_mtime_ns
    assert predict(workspace, [images], out, "--config", "unet3d") == 0
    assert "predicted 0 case(s), skipped 2" in capsys.readouterr().out
    assert (out / f"{CASE}.nii.gz").stat().st_mtime_ns == stamp
    assert predict(workspace, [images], out, "--config", "unet3d", "--overwrite") == 0
    assert "predicted 2 case(s)" in capsys.readouterr().out
    assert (out / f"{CASE}.nii.gz").stat().st_mtime_ns != stamp
    assert not list(out.glob(".tmp-*"))


def write_bad_case(dataset: Path, folder: Path, problem: str) -> str:
    """Copy phantom_007 as case 'bad' with one problem; returns the expected message."""
    paths = copy_case(dataset, folder, "phantom_007")
    bad = [p.rename(folder / p.name.replace("phantom_007", "bad")) for p in paths]
    image = nib.load(bad[1])
    data = np.asarray(image.dataobj).astype(np.float32)
    if problem == "nan":
        data[3, 4, 5] = np.nan
        nib.save(nib.Nifti1Image(data, image.affine), str(bad[1]))
        return "file holds 1 NaN"
    if problem == "shape":
        nib.save(nib.Nifti1Image(data[:-2], image.affine), str(bad[1]))
        return "differs from"
    if problem == "missing":
        bad[1].unlink()
        return "bad_0001.nii.gz: file not found"
    shutil.copy(bad[1], folder / "bad_0002.nii.gz")  # one channel too many
    return "channel file(s) 0002 found but the model has 2 channel(s)"


@pytest.mark.parametrize("problem", ["nan", "shape", "missing", "channels"])
def test_a_bad_case_fails_alone(
    tmp_path: Path,
    trained: tuple[Path, Workspace],
    capsys: pytest.CaptureFixture[str],
    problem: str,
) -> None:
    dataset, workspace = trained
    folder = tmp_path / "in"
    copy_case(dataset, folder)
    message = write_bad_case(dataset, folder, problem)
    args = ["--config", "unet3d", "--no-tta", "-np", "2"]  # background threads
    assert predict(workspace, [folder], tmp_path / "out", *args) == 2
    captured = capsys.readouterr()
    lines = [STAMP.sub("", line) for line in captured.err.splitlines()]  # log timestamps
    errors = [line for line in lines if line.startswith("error: bad")]
    assert len(errors) == 1 and message in errors[0]
    assert "predicted 1 case(s), 1 FAILED (bad)" in captured.out
    assert (tmp_path / "out" / f"{CASE}.nii.gz").is_file()
    assert not (tmp_path / "out" / "bad.nii.gz").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--config", "best"], "best.json not found"),
        (["--config", "unet3d", "--folds", "3"], "fold(s) 3 of 'unet3d' have no checkpoint_final"),
        (["--config", "unet3d", "--step-size", "0"], "--step-size: expected a number in (0, 1]"),
        (["--config", "unet3d", "--save-feature-maps", "normal:0"], "needs a DeepMedic"),
        (["--config", "deepmedic", "--save-feature-maps", "deep:1"], "invalid feature-map"),
        (["--model", "missing.zip"], "model archive not found"),
    ],
)
def test_fatal_errors_are_one_line(
    tmp_path: Path,
    trained: tuple[Path, Workspace],
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    dataset, workspace = trained
    ws = None if "--model" in args else workspace
    assert predict(ws, [dataset / "imagesTs"], tmp_path / "out", *args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(("autoseg: error: ", "autoseg predict: error: "))
    assert message in err[-1]
    assert not (tmp_path / "out" / f"{CASE}.nii.gz").exists()


def test_usage_errors(
    tmp_path: Path, trained: tuple[Path, Workspace], capsys: pytest.CaptureFixture[str]
) -> None:
    dataset, workspace = trained
    assert predict(workspace, [dataset / "imagesTs"], tmp_path, "--config", "nnunet") == 2
    assert "invalid choice: 'nnunet'" in capsys.readouterr().err
    assert predict(workspace, [tmp_path / "nothing"], tmp_path / "o", "--config", "unet3d") == 2
    assert "input not found" in capsys.readouterr().err
    empty = Workspace(tmp_path / "empty")
    empty.root.mkdir()
    shutil.copy(workspace.plans_json, empty.plans_json)
    assert predict(empty, [dataset / "imagesTs"], tmp_path / "o", "--config", "deepmedic") == 2
    assert "'deepmedic' has no trained fold" in capsys.readouterr().err


def test_best_ensemble_archive_and_feature_maps(
    tmp_path: Path, trained: tuple[Path, Workspace], capsys: pytest.CaptureFixture[str]
) -> None:
    dataset, source = trained
    work = tmp_path / "work"
    shutil.copytree(source.root, work, ignore=shutil.ignore_patterns("preprocessed"))
    best = {"configs": ["unet3d", "deepmedic"], "folds": [0, 1], "postprocessing": {"1": True}}
    (work / "best.json").write_text(json.dumps(best))
    case = copy_case(dataset, tmp_path / "in")
    extra = ["--no-tta", "--save-probabilities"]
    assert predict(Workspace(work), case, tmp_path / "a", *extra) == 0
    zip_path = tmp_path / "model.zip"
    assert main(["export-model", "--work", str(work), "--out", str(zip_path)]) == 0
    assert "+ best.json" in capsys.readouterr().out
    assert predict(None, case, tmp_path / "b", "--model", str(zip_path), *extra) == 0
    a, b = (
        np.asarray(nib.load(d / f"{CASE}.nii.gz").dataobj) for d in (tmp_path / "a", tmp_path / "b")
    )
    np.testing.assert_array_equal(a, b)
    with np.load(tmp_path / "a" / f"{CASE}.npz") as npz:
        probabilities = npz["probabilities"]
    assert probabilities.shape == (4, *a.shape[::-1]) and probabilities.dtype == np.float16
    layers = ["--save-feature-maps", "normal:1", "subsampled_1:0", "fc:0"]
    maps = tmp_path / "maps"
    assert predict(Workspace(work), case, maps, "--config", "deepmedic", "--no-tta", *layers) == 0
    for name, width in (("normal_layer1", 4), ("subsampled_1_layer0", 4), ("fc_layer0", 6)):
        image = nib.load(maps / f"{CASE}_features_{name}.nii.gz")
        assert image.shape == (*a.shape, width)
        np.testing.assert_allclose(image.affine, nib.load(case[0]).affine, atol=1e-5)


def test_csv_and_single_file_inputs(tmp_path: Path, trained: tuple[Path, Workspace]) -> None:
    dataset, workspace = trained
    paths = copy_case(dataset, tmp_path / "in")
    csv = tmp_path / "cases.csv"
    csv.write_text(f"case,T1,FLAIR\nfirst,in/{paths[0].name},in/{paths[1].name}\n")
    assert predict(workspace, [csv], tmp_path / "out", "--config", "unet3d", "--no-tta") == 0
    assert predict(workspace, paths, tmp_path / "out", "--config", "unet3d", "--no-tta") == 0
    first = np.asarray(nib.load(tmp_path / "out" / "first.nii.gz").dataobj)
    single = np.asarray(nib.load(tmp_path / "out" / f"{CASE}.nii.gz").dataobj)
    np.testing.assert_array_equal(first, single)


@pytest.mark.parametrize("workers", ["0", "1"])
def test_an_unexpected_failure_is_reported_and_the_rest_runs(
    tmp_path: Path,
    trained: tuple[Path, Workspace],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    workers: str,
) -> None:
    from autoseg.inference.predictor import Predictor

    original = Predictor.predict

    def flaky(self: Predictor, prepared: object) -> object:
        if prepared.case_id == "phantom_006":  # type: ignore[attr-defined]
            raise RuntimeError("CUDA out of memory (simulated)")
        return original(self, prepared)  # type: ignore[arg-type]

    monkeypatch.setattr(Predictor, "predict", flaky)
    dataset, workspace = trained
    args = ["--config", "deepmedic", "--no-tta", "-np", workers]
    assert predict(workspace, [dataset / "imagesTs"], tmp_path / "out", *args) == 2
    captured = capsys.readouterr()
    assert "error: phantom_006: RuntimeError: CUDA out of memory (simulated)" in captured.err
    assert "predicted 1 case(s), 1 FAILED (phantom_006)" in captured.out
    assert (tmp_path / "out" / "phantom_007.nii.gz").is_file()
    assert not (tmp_path / "out" / "phantom_006.nii.gz").exists()


def test_msd_test_folders_and_dataset_folders_are_predicted(
    tmp_path: Path, trained: tuple[Path, Workspace]
) -> None:
    """MSD names (one 4D file per case, no _XXXX), and a dataset folder's test cases."""
    dataset, workspace = trained
    args = ["--config", "unet3d", "--no-tta", "--folds", "0"]
    assert predict(workspace, [dataset / "imagesTs"], tmp_path / "nnunet", *args) == 0
    expected = read_image(tmp_path / "nnunet" / f"{CASE}.nii.gz")[0]
    channels = [read_image(dataset / "imagesTs" / f"{CASE}_{c:04d}.nii.gz") for c in (0, 1)]
    geometry = channels[0][1]
    msd = tmp_path / "msd" / "imagesTs"
    msd.mkdir(parents=True)
    stack = np.stack([array for array, _ in channels], axis=-1).transpose(2, 1, 0, 3)
    image = nib.Nifti1Image(stack.astype(np.float32), geometry.affine)
    nib.save(image, str(msd / f"{CASE}.nii.gz"))  # MSD: X, Y, Z, channels
    assert predict(workspace, [msd], tmp_path / "from_msd", *args) == 0
    np.testing.assert_array_equal(read_image(tmp_path / "from_msd" / f"{CASE}.nii.gz")[0], expected)
    description = {
        "name": "msd",
        "modality": {"0": "T1", "1": "FLAIR"},
        "labels": {"0": "background", "1": "lesion", "2": "core", "3": "satellite"},
        "training": [],
        "test": [f"./imagesTs/{CASE}.nii.gz"],
    }
    (msd.parent / "dataset.json").write_text(json.dumps(description))
    assert predict(workspace, [msd.parent], tmp_path / "from_list", *args) == 0
    assert sorted(p.name for p in (tmp_path / "from_list").iterdir()) == [f"{CASE}.nii.gz"]
    assert predict(workspace, [dataset], tmp_path / "from_dataset", *args) == 0  # imagesTs/
    assert sorted(p.name for p in (tmp_path / "from_dataset").iterdir()) == [
        "phantom_006.nii.gz",
        "phantom_007.nii.gz",
    ]
