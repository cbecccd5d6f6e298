"""Perturbations of the cascade's first-stage segmentation in training (nnU-Net's cascade).

The second stage must not learn to copy its first stage: besides the spatial transforms and
mirroring it shares with the labels, the first stage's label map of each training patch
(``seg`` channel 1) is degraded the way nnU-Net degrades its one-hot encoding:

- with probability ``p_morphology`` per sample, every foreground label present, in random
  order, gets a random binary operation (dilation, erosion, opening or closing) of a random
  radius in ``radius`` voxels (a dilated label overwrites its neighbours; an eroded one
  leaves background);
- with probability ``p_remove`` per sample, one connected component of a random label
  present is removed (set to background), unless it covers more than ``max_fraction`` of
  the patch.

Labels are never touched (channel 0). Randomness from NumPy's global generator, like every
batchgenerators transform (seeded per loader worker).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from batchgenerators.transforms.abstract_transforms import AbstractTransform
from scipy import ndimage

__all__ = ["PerturbFirstStage"]

_OPERATIONS: tuple[Callable[..., np.ndarray], ...] = (
    ndimage.binary_dilation,
    ndimage.binary_erosion,
    ndimage.binary_opening,
    ndimage.binary_closing,
)


class PerturbFirstStage(AbstractTransform):  # type: ignore[misc]
    """Degrade ``seg[:, 1]`` (see the module docstring)."""

    def __init__(
        self,
        p_morphology: float = 0.4,
        radius: tuple[int, int] = (1, 8),
        p_remove: float = 0.2,
        max_fraction: float = 0.15,
    ) -> None:
        self.p_morphology = p_morphology
        self.radius = radius
        self.p_remove = p_remove
        self.max_fraction = max_fraction

    def __call__(self, **batch: Any) -> dict[str, Any]:
        seg = batch["seg"]
        for b in range(seg.shape[0]):
            stage = seg[b, 1]
            if np.random.uniform() < self.p_morphology:
                self._morphology(stage)
            if np.random.uniform() < self.p_remove:
                self._remove_component(stage)
        return batch

    def _morphology(self, stage: np.ndarray) -> None:
        structure = ndimage.generate_binary_structure(stage.ndim, 1)
        for value in np.random.permutation(_present(stage)):
            operation = _OPERATIONS[np.random.randint(len(_OPERATIONS))]
            radius = np.random.randint(self.radius[0], self.radius[1] + 1)
            mask = stage == value
            changed = operation(mask, structure=structure, iterations=int(radius))
            stage[mask & ~changed] = 0
            stage[changed] = value

    def _remove_component(self, stage: np.ndarray) -> None:
        present = _present(stage)
        if not present:
            return
        value = present[np.random.randint(len(present))]
        components, count = ndimage.label(stage == value)
        if count == 0:
            return
        sizes = np.bincount(components.ravel())[1:]
        small = np.flatnonzero(sizes <= self.max_fraction * stage.size) + 1
        if len(small):
            stage[components == small[np.random.randint(len(small))]] = 0


def _present(stage: np.ndarray) -> list[int]:
    return [int(v) for v in np.unique(stage) if v != 0]
