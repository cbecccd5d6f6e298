"""Predictor: raw case -> preprocessing -> models -> export, with hand-set models whose output
is a known function of position, so the exported label map must equal it exactly."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from torch import nn

from autoseg.data.dataset import Case
from autoseg.errors import CheckpointError, InputError
from autoseg.inference.models import ModelSelection
from autoseg.inference.predictor import PredictionOptions, Predictor
from autoseg.networks import DeepMedicConfig
from autoseg.planner.plans import Plans
from autoseg.preprocessing.normalize import ChannelNormalization
from autoseg.workspace import Workspace

SHAPE = (18, 22, 20)  # Z, Y, X
BOX = (slice(2, 15), slice(3, 20), slice(1, 18))


class IntensityClassifier(nn.Module):
    """U-Net stand-in: class k where channel 0 equals k + 1 (a per-voxel function)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.register_buffer("classes", torch.arange(num_classes, dtype=torch.float32))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return -10.0 * (x[:, :1] - 1.0 - self.classes.view(1, -1, 1, 1, 1)) ** 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x)


class DeepMedicIntensityClassifier(IntensityClassifier):
    """DeepMedic stand-in: the same function of the normal pathway's centre voxels."""

    def __init__(self, config: DeepMedicConfig) -> None:
        super().__init__(config.num_classes)
        self.rf = config.normal.receptive_field()

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        x = inputs[0]
        out = [n - r + 1 for n, r in zip(x.shape[2:], self.rf)]
        h = [(r - 1) // 2 for r in self.rf]
        return self.logits(
            x[:, :, h[0] : h[0] + out[0], h[1] : h[1] + out[1], h[2] : h[2] + out[2]]
        )


class ConstantLogits(nn.Module):
    """Fixed logits everywhere (for either family: output shaped like its first input)."""

    def __init__(self, logits: Sequence[float], rf: tuple[int, int, int] = (1, 1, 1)) -> None:
        super().__init__()
        self.register_buffer("value", torch.tensor(logits, dtype=torch.float32))
        self.rf = rf

    def forward(self, x: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        first = x if isinstance(x, torch.Tensor) else x[0]
        out = [n - r + 1 for n, r in zip(first.shape[2:], self.rf)]
        return self.value.view(1, -1, 1, 1, 1).expand(first.shape[0], -1, *out).clone()


def labels_of_position(shape: tuple[int, int, int]) -> np.ndarray:
    """Classes 0..3 as a function of (y, x), constant along z, zero outside BOX."""
    _, yy, xx = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    labels = ((yy // 4 + xx // 5) % 4).astype(np.uint8)
    outside = np.ones(shape, dtype=bool)
    outside[BOX] = False
    labels[outside] = 0
    return labels


def direction(kind: str) -> np.ndarray:
    if kind == "oblique":
        a, b = 0.4, 0.25
        rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
        rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
        return rz @ rx
    if kind == "non-ras":  # LPS-like and permuted: i -> -y, j -> -x, k -> z
        return np.array([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    return np.eye(3)


def affine_for(kind: str, spacing_zyx: tuple[float, float, float]) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = direction(kind) * np.asarray(spacing_zyx[::-1])[None, :]
    affine[:3, 3] = (-31.5, 12.25, 80.0)
    return affine


def exact_plans(plans: Plans, **changes: object) -> Plans:
    """Plans without intensity normalisation (the network sees the raw values)."""
    return dataclasses.replace(
        plans, normalization=(ChannelNormalization("none", False),) * plans.num_channels, **changes
    )  # type: ignore[arg-type]


def predictor_for(
    plans: Plans, configs: tuple[str, ...], models: dict[str, nn.Module]
) -> Predictor:
    selection = ModelSelection(configs, {c: (0,) for c in configs}, "final")
    return Predictor(plans, selection, {c: [models[c]] for c in configs}, torch.device("cpu"))


def models_for(plans: Plans) -> dict[str, nn.Module]:
    config = plans.configuration("deepmedic").network
    assert isinstance(config, DeepMedicConfig)
    return {
        "unet3d": IntensityClassifier(plans.num_classes),
        "deepmedic": DeepMedicIntensityClassifier(config),
    }


@pytest.mark.parametrize(
    ("kind", "spacing_factor"),
    [("oblique", (1.0, 1.0, 1.0)), ("non-ras", (1.0, 1.0, 1.0)), ("oblique", (2.5, 1.0, 1.0))],
    ids=["oblique", "non-ras", "anisotropic-z"],
)
@pytest.mark.parametrize("configs", [("unet3d",), ("deepmedic",), ("unet3d", "deepmedic")])
def test_position_function_comes_back_exactly(
    tmp_path: Path,
    planned: tuple[Path, Plans],
    write_case: Callable[..., list[Path]],
    kind: str,
    spacing_factor: tuple[float, float, float],
    configs: tuple[str, ...],
) -> None:
    plans = exact_plans(planned[1])
    target = plans.configuration("unet3d").target_spacing
    assert plans.configuration("deepmedic").target_spacing == target
    spacing = tuple(t * f for t, f in zip(target, spacing_factor))
    expected = labels_of_position(SHAPE)
    intensities = np.where(_in_box(), expected + 1.0, 0.0)
    image = np.stack([intensities, intensities]).astype(np.float32)
    affine = affine_for(kind, spacing)  # type: ignore[arg-type]
    paths = write_case(tmp_path / "in", "case", image, affine)
    predictor = predictor_for(plans, configs, models_for(plans))
    prediction = predictor.predict_case(Case("case", tuple(paths)))
    if spacing_factor != (1.0, 1.0, 1.0):
        assert prediction.properties.shape_after_resample != prediction.properties.shape_after_crop
    out = tmp_path / "out" / "case.nii.gz"
    labels = predictor.export(prediction, out, reference=paths[0])
    np.testing.assert_array_equal(labels, expected)
    written = nib.load(out)
    np.testing.assert_array_equal(np.asarray(written.dataobj).transpose(2, 1, 0), expected)
    reference = nib.load(paths[0])
    assert written.shape == reference.shape
    np.testing.assert_array_equal(written.affine, reference.affine)
    np.testing.assert_array_equal(written.header.get_qform(), reference.header.get_qform())
    assert nib.aff2axcodes(written.affine) == nib.aff2axcodes(reference.affine)


def _in_box() -> np.ndarray:
    mask = np.zeros(SHAPE, dtype=bool)
    mask[BOX] = True
    return mask


def test_configurations_are_averaged_with_equal_weights(
    tmp_path: Path, planned: tuple[Path, Plans], write_case: Callable[..., list[Path]]
) -> None:
    plans = planned[1]
    config = plans.configuration("deepmedic").network
    assert isinstance(config, DeepMedicConfig)
    unet_logits, dm_logits = [0.0, 2.0, 0.0, -1.0], [1.0, 0.0, 0.5, 0.0]
    models = {
        "unet3d": ConstantLogits(unet_logits),
        "deepmedic": ConstantLogits(dm_logits, config.normal.receptive_field()),
    }
    image = np.zeros((2, *SHAPE), dtype=np.float32)
    image[(slice(None), *BOX)] = 1.0
    paths = write_case(tmp_path, "case", image, affine_for("oblique", (1.0, 1.0, 1.0)))
    got = predictor_for(plans, ("unet3d", "deepmedic"), models).predict_case(
        Case("case", tuple(paths))
    )
    expected = (
        torch.softmax(torch.tensor(unet_logits), 0) + torch.softmax(torch.tensor(dm_logits), 0)
    ) / 2
    np.testing.assert_allclose(
        got.probabilities[:, 3, 4, 5], expected.numpy(), rtol=1e-5, atol=1e-6
    )


def test_roi_masks_make_outside_background(
    tmp_path: Path, planned: tuple[Path, Plans], write_case: Callable[..., list[Path]]
) -> None:
    plans = dataclasses.replace(planned[1], use_roi_mask=True)
    image = np.random.default_rng(0).uniform(1, 2, size=(2, *SHAPE)).astype(np.float32)
    affine = affine_for("non-ras", plans.configuration("unet3d").target_spacing)
    paths = write_case(tmp_path, "case", image, affine)
    roi = np.zeros(SHAPE, dtype=np.uint8)
    roi[3:12, 5:18, 2:9] = 1
    roi[3:6, 5:8, 2:4] = 0  # not a box: the crop box alone would not do it
    roi_path = tmp_path / "case_roi.nii.gz"
    nib.save(nib.Nifti1Image(roi.transpose(2, 1, 0), affine), str(roi_path))
    predictor = predictor_for(plans, ("unet3d",), {"unet3d": ConstantLogits([0.0, 3.0, 0.0, 0.0])})
    with pytest.raises(InputError, match="trained with ROI masks"):
        predictor.prepare(Case("case", tuple(paths)))
    prediction = predictor.predict_case(Case("case", tuple(paths), roi=roi_path))
    labels = predictor.export(prediction, tmp_path / "out.nii.gz", reference=paths[0])
    np.testing.assert_array_equal(labels, roi)


def test_from_workspace_loads_folds_and_checks_plans(
    tmp_path: Path,
    planned: tuple[Path, Plans],
    workspace_factory: Callable[..., Workspace],
    fold_saver: Callable[..., nn.Module],
) -> None:
    plans = planned[1]
    workspace = workspace_factory(tmp_path / "w", plans, {"unet3d": (0, 2)})
    predictor = Predictor.from_workspace(workspace, "unet3d", device="cpu")
    assert predictor.selection.folds["unet3d"] == (0, 2)
    assert len(predictor.networks["unet3d"]) == 2
    assert not predictor.networks["unet3d"][0].training
    other = dataclasses.replace(plans, dataset_name="Other")
    fold_saver(workspace, other, "unet3d", 3)
    with pytest.raises(CheckpointError, match=r"other plans .* dataset_name"):
        Predictor.from_workspace(workspace, "unet3d", [3], device="cpu")
    fold_saver(workspace, plans, "deepmedic", 0, network=nn.Conv3d(1, 1, 1))
    with pytest.raises(CheckpointError, match="do not match the planned network"):
        Predictor.from_workspace(workspace, "deepmedic", device="cpu")


def test_feature_maps_need_deepmedic(planned: tuple[Path, Plans]) -> None:
    from autoseg.errors import ConfigError
    from autoseg.inference.deepmedic_tiling import FeatureLayer

    plans = planned[1]
    selection = ModelSelection(("unet3d",), {"unet3d": (0,)}, "final")
    options = PredictionOptions(feature_layers=(FeatureLayer("normal", 0),))
    with pytest.raises(ConfigError, match="needs a DeepMedic configuration"):
        Predictor(plans, selection, {"unet3d": []}, torch.device("cpu"), options)
