"""Sliding-window inference with Gaussian importance weighting and batched windows.

Arrays are C×Z×Y×X; patch sizes and window starts are (Z, Y, X) voxel counts/indices.
The stitched result is the Gaussian-weighted mean of whatever ``predict_fn`` returns for the
windows covering each voxel: logits for a plain network (as nnU-Net does), or probabilities
if ``predict_fn`` applies a softmax. Intended use: average logits here (and over mirrors),
apply the softmax to the stitched logits, then ensemble folds by averaging probabilities.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from types import EllipsisType

import torch
import torch.nn.functional as F
from tqdm import tqdm

from autoseg.errors import ConfigError
from autoseg.inference.tta import predict_with_mirroring, validate_mirror_axes
from autoseg.log import get_logger
from autoseg.precision import autocast_context
from autoseg.typing import Shape3

__all__ = [
    "compute_window_starts",
    "gaussian_importance_map",
    "pad_to_patch",
    "sliding_window_inference",
    "sliding_window_voxels",
    "windows_along",
]

logger = get_logger(__name__)

PredictFn = Callable[[torch.Tensor], torch.Tensor]
Slicer = tuple[EllipsisType | slice, ...]


def _as_shape3(values: Sequence[int], name: str) -> Shape3:
    shape = tuple(int(v) for v in values)
    if len(shape) != 3 or any(v < 1 for v in shape):
        raise ConfigError(f"{name} must be 3 positive voxel counts (Z, Y, X), got {values=}")
    return shape  # type: ignore[return-value]


def _check_step_fraction(step_fraction: float) -> float:
    step_fraction = float(step_fraction)
    if not 0.0 < step_fraction <= 1.0:
        raise ConfigError(
            f"step size must satisfy 0 < step <= 1 (of a patch), got {step_fraction=}"
        )
    return step_fraction


def windows_along(size: int, patch: int, step_fraction: float) -> int:
    """The number of windows along one axis: the fewest whose starts, spread evenly from 0
    to ``size - patch``, are at most ``floor(step_fraction * patch)`` voxels apart (at least
    1). ``size`` is at least ``patch`` (pad first).

    Example:
        >>> windows_along(10, 4, 0.5)  # starts 0, 2, 4, 6
        4
    """
    max_step = max(1, int(patch * step_fraction + 1e-9))
    return math.ceil((size - patch) / max_step) + 1


def sliding_window_voxels(
    image_shape: Sequence[int], patch_size: Sequence[int], step_fraction: float = 0.5
) -> int:
    """Output voxels a sliding-window prediction computes (windows × window voxels), the
    image padded up to the patch first as :func:`sliding_window_inference` pads it.

    Raises:
        ConfigError: If a size or ``step_fraction`` is invalid.

    Example:
        >>> sliding_window_voxels((64, 20, 32), (32, 32, 32), 0.5)  # 3 x 1 x 1 windows
        98304
    """
    shape = _as_shape3(image_shape, "image shape")
    patch = _as_shape3(patch_size, "patch size")
    step_fraction = _check_step_fraction(step_fraction)
    return math.prod(windows_along(max(s, p), p, step_fraction) * p for s, p in zip(shape, patch))


def compute_window_starts(
    image_shape: Sequence[int], patch_size: Sequence[int], step_fraction: float = 0.5
) -> list[Shape3]:
    """Start indices of windows that tile an image completely.

    Along each axis the starts are spread evenly from 0 to ``size - patch`` with the fewest
    windows whose step is at most ``floor(step_fraction * patch)`` voxels (at least 1).

    Args:
        image_shape: Image size along (Z, Y, X); each at least the patch size (pad first with
            :func:`pad_to_patch`).
        patch_size: Window size along (Z, Y, X) in voxels.
        step_fraction: Largest step as a fraction of the patch, in (0, 1]; 0.5 = half a patch.

    Returns:
        (z, y, x) start tuples, Z slowest; ``len == prod(windows per axis)``.

    Raises:
        ConfigError: If a size or ``step_fraction`` is invalid.
        ValueError: If the image is smaller than the patch along an axis.

    Example:
        >>> compute_window_starts((10, 4, 5), (4, 4, 4), 0.5)
        [(0, 0, 0), (0, 0, 1), (2, 0, 0), (2, 0, 1), (4, 0, 0), (4, 0, 1), (6, 0, 0), (6, 0, 1)]
    """
    shape = _as_shape3(image_shape, "image shape")
    patch = _as_shape3(patch_size, "patch size")
    step_fraction = _check_step_fraction(step_fraction)
    if any(s < p for s, p in zip(shape, patch)):
        raise ValueError(f"image {shape} is smaller than patch {patch}; pad it with pad_to_patch")
    per_axis = []
    for size, p in zip(shape, patch):
        span, n = size - p, windows_along(size, p, step_fraction)
        # Round i * span / (n - 1) half up with integers, so steps never exceed max_step.
        per_axis.append(
            [0] if n == 1 else [(2 * i * span + n - 1) // (2 * (n - 1)) for i in range(n)]
        )
    return [(z, y, x) for z in per_axis[0] for y in per_axis[1] for x in per_axis[2]]


def pad_to_patch(
    image: torch.Tensor, patch_size: Sequence[int], value: float = 0.0
) -> tuple[torch.Tensor, Slicer]:
    """Pad the last three axes of ``image`` symmetrically up to at least ``patch_size``.

    Args:
        image: Tensor shaped (..., Z, Y, X), e.g. C×Z×Y×X.
        patch_size: Minimum size along (Z, Y, X).
        value: Constant fill (0 suits normalised intensities).

    Returns:
        ``(padded, slicer)``: ``padded`` is ``image`` itself when no axis is short; ``slicer``
        indexes any (..., Z', Y', X') array on the padded grid back to the original grid,
        e.g. ``stitched[slicer]``.

    Raises:
        ValueError: If ``image`` has fewer than 3 dimensions.
    """
    if image.ndim < 3:
        raise ValueError(f"image must end with Z, Y, X axes, got shape {tuple(image.shape)}")
    patch = _as_shape3(patch_size, "patch size")
    spatial = tuple(int(s) for s in image.shape[-3:])
    before = [max(p - s, 0) // 2 for s, p in zip(spatial, patch)]
    after = [max(p - s, 0) - b for s, p, b in zip(spatial, patch, before)]
    slicer: Slicer = (Ellipsis, *(slice(b, b + s) for b, s in zip(before, spatial)))
    if not any(before) and not any(after):
        return image, slicer
    # F.pad takes (left, right) pairs starting from the last axis.
    pads = [v for axis in (2, 1, 0) for v in (before[axis], after[axis])]
    return F.pad(image, pads, mode="constant", value=value), slicer


@functools.lru_cache(maxsize=16)
def _cached_gaussian(
    patch: Shape3, sigma_scale: float, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    with torch.inference_mode(False):  # a normal tensor even if first built in inference mode
        return _build_gaussian(patch, sigma_scale, dtype, device)


def _build_gaussian(
    patch: Shape3, sigma_scale: float, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    profiles = []
    for p in patch:
        centred = torch.arange(p, dtype=torch.float64) - (p - 1) / 2.0
        profiles.append(torch.exp(-0.5 * (centred / (p * sigma_scale)) ** 2))
    gauss = profiles[0][:, None, None] * profiles[1][None, :, None] * profiles[2][None, None, :]
    gauss = (gauss / gauss.max()).to(dtype)
    # Far corners can underflow in low precision; every voxel of a window must still count.
    gauss = gauss.clamp_min(gauss[gauss > 0].min())
    return gauss.to(device)


def gaussian_importance_map(
    patch_size: Sequence[int],
    sigma_scale: float = 1.0 / 8.0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Separable Gaussian weight map over a patch, peak 1 at the centre, positive everywhere.

    The standard deviation along each axis is ``sigma_scale * patch`` voxels. Values that would
    underflow to 0 in ``dtype`` are raised to the smallest positive value. Results are cached
    per (patch, sigma, dtype, device); treat the returned tensor as read-only.

    Args:
        patch_size: Patch size along (Z, Y, X) in voxels.
        sigma_scale: Standard deviation as a fraction of the patch size, > 0.
        dtype: Floating dtype of the map.
        device: Device of the map.

    Returns:
        Tensor shaped (Z, Y, X) with values in (0, 1] and maximum 1.

    Raises:
        ConfigError: If the patch or ``sigma_scale`` is invalid.
    """
    patch = _as_shape3(patch_size, "patch size")
    if not sigma_scale > 0:
        raise ConfigError(f"Gaussian sigma scale must be > 0, got {sigma_scale=}")
    return _cached_gaussian(patch, float(sigma_scale), dtype, torch.device(device))


def _forward(
    predict_fn: PredictFn,
    batch: torch.Tensor,
    mirror_axes: tuple[int, ...] | None,
    amp: bool,
    device: torch.device,
) -> torch.Tensor:
    with autocast_context(amp, device.type):
        if mirror_axes:
            return predict_with_mirroring(predict_fn, batch, mirror_axes)
        return predict_fn(batch)


def _check_arguments(
    image: torch.Tensor, num_classes: int, batch_size: int, mirror_axes: Sequence[int] | None
) -> tuple[int, ...] | None:
    if image.ndim != 4:
        raise ValueError(f"image must be C×Z×Y×X (4-D), got shape {tuple(image.shape)}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes=}")
    if batch_size < 1:
        raise ConfigError(f"window batch size must be >= 1, got {batch_size=}")
    return None if mirror_axes is None else validate_mirror_axes(mirror_axes)


def sliding_window_inference(
    predict_fn: PredictFn,
    image: torch.Tensor,
    patch_size: Sequence[int],
    num_classes: int,
    *,
    step_fraction: float = 0.5,
    batch_size: int = 1,
    use_gaussian: bool = True,
    sigma_scale: float = 1.0 / 8.0,
    mirror_axes: Sequence[int] | None = None,
    compute_device: torch.device | str = "cpu",
    accumulate_device: torch.device | str = "cpu",
    amp: bool = False,
    progress: bool = False,
) -> torch.Tensor:
    """Predict a whole image window by window and stitch the windows with importance weights.

    Windows (see :func:`compute_window_starts`) are stacked ``batch_size`` at a time into one
    forward pass on ``compute_device``; each output is multiplied by the Gaussian map (or 1)
    and added into a class accumulator and a weight accumulator preallocated once on
    ``accumulate_device``; the result is their quotient. Images smaller than the patch are
    padded with zeros and the padding is cropped from the result. Runs under
    ``torch.inference_mode()``.

    Args:
        predict_fn: Maps a B×C×Z×Y×X batch (patch-sized) to B×K×Z×Y×X outputs, K =
            ``num_classes``; usually a network in eval mode returning logits.
        image: Input C×Z×Y×X (any device; moved to ``compute_device`` once).
        patch_size: Window size (Z, Y, X) in voxels.
        num_classes: Output channels K of ``predict_fn``.
        step_fraction: Largest step between windows as a fraction of the patch, in (0, 1].
        batch_size: Windows per forward pass, >= 1.
        use_gaussian: Weight each window by a Gaussian (centre counts most); else uniformly.
        sigma_scale: Gaussian standard deviation as a fraction of the patch.
        mirror_axes: Spatial axes (0 = Z, 1 = Y, 2 = X) for mirroring test-time augmentation,
            applied per batch of windows; ``None`` or ``()`` disables it.
        compute_device: Device that runs ``predict_fn``.
        accumulate_device: Device of the accumulators and of the result.
        amp: Run ``predict_fn`` under ``torch.autocast`` (float16 on CUDA, bfloat16 on a
            CPU; accumulation stays float32). Whether to is decided by
            :func:`autoseg.precision.use_autocast` (bfloat16 only where it is native).
        progress: Show a tqdm bar over batches.

    Returns:
        float32 tensor K×Z×Y×X on ``accumulate_device``: the weighted mean of the window
        outputs (logits if ``predict_fn`` returns logits) at every voxel.

    Raises:
        ConfigError: If ``step_fraction``, ``batch_size`` or ``patch_size`` is invalid.
        ValueError: If ``image`` is not 4-D or ``predict_fn`` returns the wrong shape.
    """
    axes = _check_arguments(image, num_classes, batch_size, mirror_axes)
    compute_device = torch.device(compute_device)
    accumulate_device = torch.device(accumulate_device)
    patch = _as_shape3(patch_size, "patch size")
    padded, unpad = pad_to_patch(image.to(compute_device), patch)
    spatial = tuple(int(s) for s in padded.shape[1:])
    starts = compute_window_starts(spatial, patch, step_fraction)
    logger.debug("sliding window: %d windows of %s over %s", len(starts), patch, spatial)
    weights = None
    if use_gaussian:
        weights = (
            gaussian_importance_map(patch, sigma_scale, device=compute_device),
            gaussian_importance_map(patch, sigma_scale, device=accumulate_device),
        )
    # Allocated outside inference mode so callers may modify the result in place.
    sums = torch.zeros((num_classes, *spatial), dtype=torch.float32, device=accumulate_device)
    norm = torch.zeros(spatial, dtype=torch.float32, device=accumulate_device)
    expected = (num_classes, *patch)
    batches = range(0, len(starts), batch_size)
    with torch.inference_mode():
        for first in tqdm(batches, disable=not progress, leave=False, unit="batch"):
            windows = [_window(start, patch) for start in starts[first : first + batch_size]]
            batch = torch.stack([padded[:, z, y, x] for z, y, x in windows])
            output = _forward(predict_fn, batch, axes, amp, compute_device)
            _check_output(output, (len(windows), *expected))
            output = output * weights[0] if weights is not None else output.float()
            output = output.to(accumulate_device)
            for i, (z, y, x) in enumerate(windows):
                sums[:, z, y, x] += output[i]
                norm[z, y, x] += 1.0 if weights is None else weights[1]
        sums /= norm
    result = sums[unpad]
    return result if result.shape == sums.shape else result.contiguous()


def _check_output(output: object, expected: tuple[int, ...]) -> None:
    if not isinstance(output, torch.Tensor):
        raise ValueError(
            f"predict_fn must return one tensor, got {type(output).__name__} "
            "(a deep-supervised network must be in eval mode)"
        )
    if tuple(output.shape) != expected:
        raise ValueError(
            f"predict_fn returned shape {tuple(output.shape)}, "
            f"expected {expected} (batch, classes, Z, Y, X)"
        )


def _window(start: Shape3, patch: Shape3) -> tuple[slice, slice, slice]:
    return (
        slice(start[0], start[0] + patch[0]),
        slice(start[1], start[1] + patch[1]),
        slice(start[2], start[2] + patch[2]),
    )
