"""Test-time augmentation by mirroring: predict on flipped inputs, flip back, average.

Spatial axes are numbered in array order ``0 = Z, 1 = Y, 2 = X``; on a batch shaped
B×C×Z×Y×X they are tensor dimensions ``2, 3, 4``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch

__all__ = ["mirror_combinations", "predict_with_mirroring", "validate_mirror_axes"]

PredictFn = Callable[[torch.Tensor], torch.Tensor]


def validate_mirror_axes(axes: Sequence[int]) -> tuple[int, ...]:
    """Check and normalise spatial mirror axes.

    Args:
        axes: Spatial axes to mirror, each in ``{0, 1, 2}`` (Z, Y, X), no repeats.

    Returns:
        The axes as a sorted tuple of Python ints.

    Raises:
        ValueError: If an axis is out of range or repeated.
    """
    normalised = tuple(sorted(int(a) for a in axes))
    if any(a not in (0, 1, 2) for a in normalised):
        raise ValueError(f"mirror axes must be spatial axes in (0, 1, 2) = (Z, Y, X), got {axes=}")
    if len(set(normalised)) != len(normalised):
        raise ValueError(f"mirror axes must not repeat, got {axes=}")
    return normalised


def mirror_combinations(axes: Sequence[int]) -> list[tuple[int, ...]]:
    """All subsets of ``axes``, the empty one (no flip) first.

    Args:
        axes: Spatial axes (0 = Z, 1 = Y, 2 = X) that may be mirrored.

    Returns:
        ``2 ** len(axes)`` tuples, ordered by size then lexicographically.

    Example:
        >>> mirror_combinations((0, 2))
        [(), (0,), (2,), (0, 2)]
    """
    axes = validate_mirror_axes(axes)
    return [combo for size in range(len(axes) + 1) for combo in itertools.combinations(axes, size)]


def predict_with_mirroring(
    predict_fn: PredictFn, batch: torch.Tensor, axes: Sequence[int]
) -> torch.Tensor:
    """Average ``flip(predict_fn(flip(batch, m)), m)`` over every mirror combination ``m``.

    The network sees each flipped copy of the batch; each prediction is flipped back before
    averaging, so every output voxel averages predictions for the same input voxel.

    Args:
        predict_fn: Maps a B×C×Z×Y×X batch to B×K×Z×Y×X outputs (logits or probabilities;
            whatever it returns is averaged as is).
        batch: Input windows, B×C×Z×Y×X.
        axes: Spatial axes to mirror (0 = Z, 1 = Y, 2 = X); empty means no augmentation.

    Returns:
        The float32 mean over ``2 ** len(axes)`` predictions, B×K×Z×Y×X, on the device of
        ``predict_fn``'s output. ``batch`` is not modified.

    Raises:
        ValueError: If ``batch`` is not 5-D, an axis is invalid or ``predict_fn`` does not
            return a tensor.
    """
    if batch.ndim != 5:
        raise ValueError(f"batch must be B×C×Z×Y×X (5-D), got shape {tuple(batch.shape)}")
    combos = mirror_combinations(axes)
    total: torch.Tensor | None = None
    for combo in combos:
        dims = [a + 2 for a in combo]
        prediction = predict_fn(torch.flip(batch, dims) if dims else batch)
        if not isinstance(prediction, torch.Tensor):
            raise ValueError(
                f"predict_fn must return one tensor, got {type(prediction).__name__} "
                "(a deep-supervised network must be in eval mode)"
            )
        if dims:
            prediction = torch.flip(prediction, dims)
        if total is None:
            # A private float32 copy: the model's output may alias its input or a buffer.
            total = prediction.to(dtype=torch.float32, copy=True)
        else:
            total.add_(prediction)
    assert total is not None  # combos always holds the empty combination
    return total.div_(len(combos))
