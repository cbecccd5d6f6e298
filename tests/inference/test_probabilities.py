"""predict_probabilities: dispatch, what TTA and fold ensembling average, ROI, modes."""

from __future__ import annotations

import dataclasses
import itertools
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from autoseg.errors import ConfigError
from autoseg.inference.deepmedic_tiling import FeatureLayer
from autoseg.inference.probabilities import (
    predict_probabilities,
    predict_with_features,
    resolve_device,
)
from autoseg.networks import build_network
from autoseg.planner.plans import Plans


def networks(plans: Plans, config: str, seeds: tuple[int, ...]) -> list[torch.nn.Module]:
    built = []
    for seed in seeds:
        torch.manual_seed(seed)
        built.append(build_network(plans.configuration(config).network))
    return built


def image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@pytest.mark.parametrize("config", ["unet3d", "deepmedic"])
def test_folds_are_averaged_as_probabilities(planned: tuple[Path, Plans], config: str) -> None:
    plans = planned[1]
    plan = plans.configuration(config)
    nets = networks(plans, config, (1, 2))
    x = image((2, 20, 18, 17))
    both = predict_probabilities(nets, plan, x, use_mirroring=False)
    each = [predict_probabilities([n], plan, x, use_mirroring=False) for n in nets]
    assert both.shape == (plans.num_classes, 20, 18, 17) and both.dtype == np.float32
    np.testing.assert_allclose(both, (each[0] + each[1]) / 2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(both.sum(0), 1.0, atol=1e-5)
    assert np.abs(each[0] - each[1]).max() > 1e-3  # the folds really differ


def test_unet_mirroring_averages_logits_then_softmax(planned: tuple[Path, Plans]) -> None:
    plans = planned[1]
    plan = plans.configuration("unet3d")
    (net,) = networks(plans, "unet3d", (3,))
    net.eval()
    x = image((2, *plan.inference_patch_size), seed=3)  # one window: no stitching
    got = predict_probabilities([net], plan, x, use_mirroring=True)
    batch = torch.from_numpy(x)[None]
    axes = plan.augmentation.mirror_axes
    combos = [c for n in range(len(axes) + 1) for c in itertools.combinations(axes, n)]
    with torch.no_grad():
        logits = [
            torch.flip(net(torch.flip(batch, [a + 2 for a in c])), [a + 2 for a in c])
            for c in combos
        ]
    expected = torch.softmax(torch.stack(logits).mean(0)[0], dim=0).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    plain = predict_probabilities([net], plan, x, use_mirroring=False)
    assert np.abs(plain - got).max() > 1e-4


def test_mirroring_follows_the_plans_mirror_axes(planned: tuple[Path, Plans]) -> None:
    plans = planned[1]
    plan = plans.configuration("unet3d")
    no_axes = dataclasses.replace(
        plan, augmentation=dataclasses.replace(plan.augmentation, mirror_axes=())
    )
    (net,) = networks(plans, "unet3d", (4,))
    x = image((2, 16, 16, 16), seed=4)
    with_tta = predict_probabilities([net], no_axes, x, use_mirroring=True)
    without = predict_probabilities([net], no_axes, x, use_mirroring=False)
    np.testing.assert_array_equal(with_tta, without)


def test_roi_sets_background_outside(planned: tuple[Path, Plans]) -> None:
    plans = planned[1]
    plan = plans.configuration("unet3d")
    nets = networks(plans, "unet3d", (5,))
    roi = np.zeros((12, 16, 16), dtype=bool)
    roi[2:9, 3:12, 4:10] = True
    probs = predict_probabilities(nets, plan, image((2, 12, 16, 16)), roi=roi, use_mirroring=False)
    assert np.all(probs[0, ~roi] == 1.0) and np.all(probs[1:, ~roi] == 0.0)
    assert probs[1:, roi].max() > 0.0


def test_training_mode_is_restored_and_inputs_checked(planned: tuple[Path, Plans]) -> None:
    plans = planned[1]
    plan = plans.configuration("unet3d")
    (net,) = networks(plans, "unet3d", (6,))
    net.train()
    predict_probabilities([net], plan, image((2, 16, 16, 16)), use_mirroring=False)
    assert net.training
    with pytest.raises(ValueError, match="C = 2 channels"):
        predict_probabilities([net], plan, image((1, 16, 16, 16)))
    with pytest.raises(ValueError, match="at least one network"):
        predict_probabilities([], plan, image((2, 16, 16, 16)))
    with pytest.raises(ConfigError, match="DeepMedic option"):
        predict_with_features(
            [net], plan, image((2, 16, 16, 16)), feature_layers=[FeatureLayer("normal", 0)]
        )


def test_deepmedic_feature_maps_come_from_the_first_fold(planned: tuple[Path, Plans]) -> None:
    plans = planned[1]
    plan = plans.configuration("deepmedic")
    nets = networks(plans, "deepmedic", (7, 8))
    layer = FeatureLayer("normal", 2)
    x = image((2, 14, 13, 12), seed=7)
    _, both = predict_with_features(nets, plan, x, use_mirroring=False, feature_layers=[layer])
    _, first = predict_with_features(nets[:1], plan, x, use_mirroring=False, feature_layers=[layer])
    assert both[layer].shape == (6, 14, 13, 12)
    np.testing.assert_array_equal(both[layer], first[layer])


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None).type == expected
    with pytest.raises(ConfigError, match="invalid device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")


def test_read_only_memory_map_input(tmp_path: Path, planned: tuple[Path, Plans]) -> None:
    """The trainer passes the preprocessed case as a read-only memory map."""
    plans = planned[1]
    plan = plans.configuration("unet3d")
    x = image((2, 16, 16, 16), seed=9)
    np.save(tmp_path / "case.npy", x)
    mapped = np.load(tmp_path / "case.npy", mmap_mode="r")
    nets = networks(plans, "unet3d", (9,))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = predict_probabilities(nets, plan, mapped, use_mirroring=False)
    np.testing.assert_array_equal(got, predict_probabilities(nets, plan, x, use_mirroring=False))


@pytest.mark.parametrize("config", ["unet3d", "deepmedic"])
def test_region_outputs_are_sigmoids_averaged_over_folds(
    planned: tuple[Path, Plans], config: str
) -> None:
    """Region-based plans: each output channel is its own sigmoid (no softmax across them);
    folds average those probabilities; outside the ROI every region is 0."""
    plans = planned[1]
    plan = plans.configuration(config)
    nets = networks(plans, config, (1, 2))
    x = image((2, 20, 18, 17))
    roi = np.ones((20, 18, 17), dtype=bool)
    roi[:4] = False
    regions = predict_probabilities(nets, plan, x, use_mirroring=False, region_based=True, roi=roi)
    softmax = predict_probabilities(nets, plan, x, use_mirroring=False)
    each = [
        predict_probabilities([n], plan, x, use_mirroring=False, region_based=True) for n in nets
    ]
    assert regions.shape == softmax.shape and float(regions[:, :4].max()) == 0.0
    np.testing.assert_allclose(regions[:, 4:], ((each[0] + each[1]) / 2)[:, 4:], atol=1e-6)
    assert np.abs(each[0].sum(0) - 1.0).max() > 1e-2  # independent per channel
    assert ((regions >= 0) & (regions <= 1)).all()
