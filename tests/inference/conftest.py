"""Fixtures for prediction tests: a planned tiny phantom workspace with tiny networks and
checkpoints of untrained (seeded) networks, and helpers to write test inputs.

The plans come from the real planner; only the networks and patch sizes are shrunk (plans are
data) so that CPU inference takes milliseconds.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from autoseg.inference.checkpoint import save_checkpoint
from autoseg.networks import (
    DeepMedicConfig,
    PathwayConfig,
    SubsampledPathwayConfig,
    UNetConfig,
    build_network,
)
from autoseg.planner.plans import Plans, load_plans
from autoseg.planner.workflow import run_plan
from autoseg.workspace import Workspace

K3 = (3, 3, 3)


def tiny_unet(in_channels: int, num_classes: int) -> UNetConfig:
    return UNetConfig(
        in_channels=in_channels,
        num_classes=num_classes,
        features_per_stage=(4, 8),
        kernel_sizes=(K3, K3),
        strides=((1, 1, 1), (2, 2, 2)),
        convs_per_stage=1,
        deep_supervision=True,
    )


def tiny_deepmedic(in_channels: int, num_classes: int) -> DeepMedicConfig:
    return DeepMedicConfig(
        in_channels=in_channels,
        num_classes=num_classes,
        normal=PathwayConfig(features=(4, 4, 6), kernels=(K3, K3, K3), residual_at=(2,)),
        subsampled=(SubsampledPathwayConfig(factor=(3, 3, 3), features=(4, 4), kernels=(K3, K3)),),
        fc_features=(8,),
        fc_first_kernel=K3,
        dropout=(0.0, 0.0),
    )


def shrink_plans(plans: Plans, **changes: object) -> Plans:
    """The plans with tiny networks and patches (and any top-level ``changes``)."""
    c, k = plans.num_channels, plans.num_classes
    configs = dict(plans.configurations)
    configs["unet3d"] = dataclasses.replace(
        configs["unet3d"],
        network=tiny_unet(c, k),
        patch_size=(16, 16, 16),
        inference_patch_size=(16, 16, 16),
    )
    configs["deepmedic"] = dataclasses.replace(
        configs["deepmedic"],
        network=tiny_deepmedic(c, k),
        patch_size=(6, 6, 6),
        inference_patch_size=(12, 12, 12),
    )
    return dataclasses.replace(plans, configurations=configs, **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def planned(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Plans]:
    """(dataset folder, tiny plans) of the tiny phantom, planned once per session."""
    work = Workspace(tmp_path_factory.mktemp("planned") / "work")
    run_plan(tiny_dataset, work, device="cpu")
    return tiny_dataset, shrink_plans(load_plans(work.plans_json))


def save_fold(
    workspace: Workspace,
    plans: Plans,
    config: str,
    fold: int | str,
    *,
    seed: int = 0,
    network: torch.nn.Module | None = None,
    checkpoint: str = "final",
) -> torch.nn.Module:
    """Write ``fold_<fold>/checkpoint_<checkpoint>.pt`` of a seeded untrained network."""
    if network is None:
        torch.manual_seed(seed)
        network = build_network(plans.configuration(config).network)
    save_checkpoint(
        workspace.fold_dir(config, fold) / f"checkpoint_{checkpoint}.pt",
        {
            "model": network.state_dict(),
            "optimizer": {"state": {}, "param_groups": []},
            "state_json": "{}",
            "plans_json": plans.to_json(),
            "train_config_json": "{}",
            "configuration": config,
            "fold": str(fold),
        },
    )
    return network


def make_workspace(
    root: Path,
    plans: Plans,
    folds: Mapping[str, Sequence[int | str]] | None = None,
    best: dict[str, object] | None = None,
) -> Workspace:
    """A workspace with ``plans`` and untrained checkpoints (default: folds 0, 1 of both)."""
    workspace = Workspace(root)
    root.mkdir(parents=True, exist_ok=True)
    plans.save(workspace.plans_json)
    chosen = folds if folds is not None else {"unet3d": (0, 1), "deepmedic": (0, 1)}
    for config, fold_list in chosen.items():
        for fold in fold_list:
            save_fold(workspace, plans, config, fold, seed=sum(map(ord, f"{config}{fold}")))
    if best is not None:
        workspace.best_json.write_text(json.dumps(best))
    return workspace


@pytest.fixture
def trained(tmp_path: Path, planned: tuple[Path, Plans]) -> Workspace:
    """A fresh workspace with folds 0 and 1 of both configurations."""
    return make_workspace(tmp_path / "work", planned[1])


@pytest.fixture
def test_images(tmp_path: Path, planned: tuple[Path, Plans]) -> Path:
    """A copy of the phantom's imagesTs folder (two cases, two channels each)."""
    out = tmp_path / "images"
    shutil.copytree(planned[0] / "imagesTs", out)
    return out


@pytest.fixture
def write_case() -> Callable[..., list[Path]]:
    """Write ``{case}_{XXXX}.nii.gz`` channel files of an array C×Z×Y×X with an affine."""

    def write(
        folder: Path, case_id: str, image: np.ndarray, affine: np.ndarray, ending: str = ".nii.gz"
    ) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for channel, volume in enumerate(image):
            path = folder / f"{case_id}_{channel:04d}{ending}"
            img = nib.Nifti1Image(np.ascontiguousarray(volume.transpose(2, 1, 0)), affine)
            img.header.set_qform(affine, code=1)
            img.header.set_sform(affine, code=1)
            nib.save(img, str(path))
            paths.append(path)
        return paths

    return write


@pytest.fixture
def workspace_factory() -> Callable[..., Workspace]:
    """:func:`make_workspace` (root, plans, folds=None, best=None) -> Workspace."""
    return make_workspace


@pytest.fixture
def fold_saver() -> Callable[..., torch.nn.Module]:
    """:func:`save_fold` (workspace, plans, config, fold, *, seed, network, checkpoint)."""
    return save_fold


@pytest.fixture(autouse=True)
def single_torch_thread() -> Iterator[None]:
    """One torch thread: tiny convolutions gain nothing from more, and on a shared CPU
    waiting for a descheduled second thread made them 30x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
