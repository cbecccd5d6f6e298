"""Predict probabilities of preprocessed images with one or more trained networks.

:func:`predict_probabilities` is the one entry point for both families (the trainer's
end-of-training validation calls it too): a U-Net predicts by Gaussian-weighted sliding
windows (:mod:`autoseg.inference.sliding_window`), DeepMedic by exact tiling
(:mod:`autoseg.inference.deepmedic_tiling`).

What is averaged, and where:

- Test-time mirroring averages the *logits* of the mirrored predictions (per window for the
  U-Net, per volume for DeepMedic), along the plan's augmentation mirror axes.
- Sliding windows are stitched as a Gaussian-weighted mean of logits.
- The softmax (for region-based training: a sigmoid per region) is applied to each
  network's stitched logits; the *probabilities* of the networks (folds) are then averaged
  with equal weights.

The window (or tile) batch size and whether to accumulate on the GPU or in host memory come
from the memory model (:func:`autoseg.planner.memory.estimate_inference_memory`) and the free
GPU memory (:func:`autoseg.inference.window_memory.choose_batch_and_accumulation`). On CUDA
the networks run under mixed precision when the plan says ``"amp"``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from autoseg.errors import ConfigError
from autoseg.inference.deepmedic_tiling import (
    FeatureLayer,
    fc_margin,
    predict_deepmedic,
    tile_output_shape,
)
from autoseg.inference.sliding_window import sliding_window_inference
from autoseg.inference.window_memory import WindowResources, choose_batch_and_accumulation
from autoseg.log import get_logger
from autoseg.networks import DeepMedicConfig, UNetConfig
from autoseg.planner.memory import estimate_inference_memory
from autoseg.planner.plans import ConfigurationPlan
from autoseg.precision import use_autocast

__all__ = [
    "predict_probabilities",
    "predict_with_features",
    "resolve_device",
]

logger = get_logger(__name__)


def resolve_device(device: torch.device | str | None) -> torch.device:
    """The torch device for ``device``: None picks CUDA when available, else the CPU.

    Raises:
        ConfigError: for an unparsable device, or CUDA when none is available.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"invalid device {device!r} ({err}); use cpu, cuda or cuda:N") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available; use cpu")
    if resolved.type not in ("cpu", "cuda"):
        raise ConfigError(f"unsupported device {device!r}; use cpu, cuda or cuda:N")
    return resolved


@contextlib.contextmanager
def _eval_mode(network: nn.Module) -> Iterator[nn.Module]:
    """Put ``network`` in eval mode for the block, restoring its previous mode after."""
    was_training = network.training
    network.eval()
    try:
        yield network
    finally:
        network.train(was_training)


def _network_device(network: nn.Module) -> torch.device:
    parameter = next(network.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _window_resources(
    config: UNetConfig | DeepMedicConfig,
    window: tuple[int, int, int],
    image_shape: Sequence[int],
    device: torch.device,
    amp: bool,
) -> WindowResources:
    """Windows per forward and accumulation place for ``device`` (memory-model driven)."""
    available = None
    if device.type == "cuda":
        available = int(torch.cuda.mem_get_info(device)[0])
    precision = "amp" if amp else "fp32"
    resources = choose_batch_and_accumulation(
        available,
        lambda batch: estimate_inference_memory(config, window, batch, precision),
        [max(int(s), w) for s, w in zip(image_shape, window)],
        config.num_classes,
        in_channels=config.in_channels,
    )
    logger.debug("inference on %s: %s for windows of %s", device, resources, window)
    return resources


def _unet_logits(
    network: nn.Module,
    plan: ConfigurationPlan,
    image: torch.Tensor,
    *,
    mirror_axes: tuple[int, ...],
    step_fraction: float,
    device: torch.device,
    amp: bool,
) -> torch.Tensor:
    patch = plan.inference_patch_size
    resources = _window_resources(plan.network, patch, image.shape[1:], device, amp)
    return sliding_window_inference(
        network,
        image,
        patch,
        plan.network.num_classes,
        step_fraction=step_fraction,
        batch_size=resources.batch_size,
        mirror_axes=mirror_axes or None,
        compute_device=device,
        accumulate_device=device if resources.accumulate_on_compute_device else "cpu",
        amp=amp,
    )


def _deepmedic_logits(
    network: nn.Module,
    plan: ConfigurationPlan,
    image: np.ndarray,
    *,
    mirror_axes: tuple[int, ...],
    device: torch.device,
    amp: bool,
    feature_layers: Sequence[FeatureLayer],
) -> tuple[torch.Tensor, dict[FeatureLayer, np.ndarray]]:
    config = plan.network
    assert isinstance(config, DeepMedicConfig)  # dispatched on the config type
    tile = tile_output_shape(config, plan.inference_patch_size)
    margin = fc_margin(config)
    request = (tile[0] + 2 * margin[0], tile[1] + 2 * margin[1], tile[2] + 2 * margin[2])
    resources = _window_resources(config, request, image.shape[1:], device, amp)
    return predict_deepmedic(
        network,
        image,
        config,
        tile,
        batch_size=resources.batch_size,
        device=device,
        accumulate_device=device if resources.accumulate_on_compute_device else "cpu",
        amp=amp,
        mirror_axes=mirror_axes or None,
        feature_layers=feature_layers,
    )


def _network_logits(
    network: nn.Module,
    plan: ConfigurationPlan,
    volume: np.ndarray,
    *,
    mirror_axes: tuple[int, ...],
    step_fraction: float,
    device: torch.device,
    amp: bool,
    feature_layers: Sequence[FeatureLayer],
) -> tuple[torch.Tensor, dict[FeatureLayer, np.ndarray]]:
    """Stitched logits K×Z×Y×X of one network (and DeepMedic feature maps), by family."""
    if isinstance(plan.network, UNetConfig):
        image = torch.from_numpy(volume)
        logits = _unet_logits(
            network,
            plan,
            image,
            mirror_axes=mirror_axes,
            step_fraction=step_fraction,
            device=device,
            amp=amp,
        )
        return logits, {}
    return _deepmedic_logits(
        network,
        plan,
        volume,
        mirror_axes=mirror_axes,
        device=device,
        amp=amp,
        feature_layers=feature_layers,
    )


def predict_probabilities(
    networks: Sequence[nn.Module],
    config_plan: ConfigurationPlan,
    image: np.ndarray,
    *,
    use_mirroring: bool = True,
    step_fraction: float = 0.5,
    device: torch.device | None = None,
    amp: bool | None = None,
    roi: np.ndarray | None = None,
    region_based: bool = False,
) -> np.ndarray:
    """Softmax (or per-region sigmoid) probabilities of a preprocessed image, averaged over
    ``networks`` (folds).

    Args:
        networks: Networks of one configuration (one per fold), built from ``config_plan``.
            Each is run in eval mode; its previous mode is restored afterwards.
        config_plan: The configuration they were trained with (kind, patch/segment sizes,
            mirror axes, precision).
        image: Preprocessed image C×Z×Y×X (float; a memory map is fine).
        use_mirroring: Test-time mirroring along the plan's augmentation mirror axes
            (``2 ** len(axes)`` predictions per window, logits averaged).
        step_fraction: U-Net window step as a fraction of the patch, in (0, 1] (0.5 = half a
            patch). DeepMedic tiles never overlap and ignore it.
        device: Device to run on; default: the first network's device. Networks elsewhere
            are moved there.
        amp: Mixed precision; None: as the plan's precision says, where the device supports
            it (:func:`autoseg.precision.use_autocast`).
        roi: Optional boolean ROI Z×Y×X on the same grid; outside it the prediction is
            background (probability 1; every region 0).
        region_based: The outputs are regions (``Plans.region_based``): a sigmoid per
            output channel instead of the softmax over them.

    Returns:
        float32 K×Z×Y×X probabilities, K = the network's output channels: summing to 1
        over K, or one independent probability per region.

    Raises:
        ConfigError: for an invalid ``step_fraction``.
        ValueError: if ``networks`` is empty or the image's channel count is not the plan's.
    """
    probabilities, _ = predict_with_features(
        networks,
        config_plan,
        image,
        use_mirroring=use_mirroring,
        step_fraction=step_fraction,
        device=device,
        amp=amp,
        roi=roi,
        region_based=region_based,
    )
    return probabilities


def predict_with_features(
    networks: Sequence[nn.Module],
    config_plan: ConfigurationPlan,
    image: np.ndarray,
    *,
    use_mirroring: bool = True,
    step_fraction: float = 0.5,
    device: torch.device | None = None,
    amp: bool | None = None,
    roi: np.ndarray | None = None,
    feature_layers: Sequence[FeatureLayer] = (),
    region_based: bool = False,
) -> tuple[np.ndarray, dict[FeatureLayer, np.ndarray]]:
    """:func:`predict_probabilities`, also recording DeepMedic feature maps.

    Feature maps come from the first network only (features of different models are not
    comparable, so they are not averaged), from its unmirrored pass, as float32 F×Z×Y×X
    on the image's grid.

    Raises:
        ConfigError: when feature maps are requested of a U-Net configuration.
    """
    if not networks:
        raise ValueError("predict_probabilities needs at least one network")
    config = config_plan.network
    if image.ndim != 4 or image.shape[0] != config.in_channels:
        raise ValueError(
            f"image must be C×Z×Y×X with C = {config.in_channels} channels "
            f"(configuration {config_plan.name!r}), got shape {image.shape}"
        )
    if feature_layers and not isinstance(config, DeepMedicConfig):
        raise ConfigError(
            f"feature maps are a DeepMedic option; configuration {config_plan.name!r} is a U-Net"
        )
    device = device if device is not None else _network_device(networks[0])
    amp = use_autocast(amp, device.type, config_plan.precision)
    mirror_axes = tuple(config_plan.augmentation.mirror_axes) if use_mirroring else ()
    volume = np.ascontiguousarray(image, dtype=np.float32)
    if not volume.flags.writeable:  # a read-only memory map: torch wants a writable array
        volume = volume.copy()
    total: np.ndarray | None = None
    features: dict[FeatureLayer, np.ndarray] = {}
    for i, network in enumerate(networks):
        network.to(device)
        with _eval_mode(network):
            logits, found = _network_logits(
                network,
                config_plan,
                volume,
                mirror_axes=mirror_axes,
                step_fraction=step_fraction,
                device=device,
                amp=amp,
                feature_layers=feature_layers if i == 0 else (),
            )
        features.update(found)
        if region_based:
            probabilities = torch.sigmoid(logits).cpu().numpy()
        else:
            probabilities = torch.softmax(logits, dim=0).cpu().numpy()
        del logits
        total = probabilities if total is None else np.add(total, probabilities, out=total)
    assert total is not None  # networks is not empty
    if len(networks) > 1:
        total /= len(networks)
    if roi is not None:
        _background_outside(total, roi, region_based)
    return total, features


def _background_outside(probabilities: np.ndarray, roi: np.ndarray, region_based: bool) -> None:
    """Set probabilities outside a Z×Y×X ROI to background (in place): class 0 at 1, or
    every region at 0."""
    if tuple(roi.shape) != tuple(probabilities.shape[1:]):
        raise ValueError(
            f"ROI shape {roi.shape} differs from the image's {probabilities.shape[1:]}"
        )
    outside = ~np.asarray(roi, dtype=bool)
    for k in range(probabilities.shape[0]):
        value = 1.0 if k == 0 and not region_based else 0.0
        np.copyto(probabilities[k], value, where=outside)
