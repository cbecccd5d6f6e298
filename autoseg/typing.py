"""Shared type aliases. Arrays are C×Z×Y×X (channels first, then array axes Z, Y, X)."""

from __future__ import annotations

from typing import TypeAlias

import numpy as np
import numpy.typing as npt

__all__ = ["Affine", "CaseId", "FloatArray", "IntArray", "LabelValue", "Shape3", "Spacing3"]

CaseId: TypeAlias = str
LabelValue: TypeAlias = int
Shape3: TypeAlias = tuple[int, int, int]
"""Array shape along (Z, Y, X)."""
Spacing3: TypeAlias = tuple[float, float, float]
"""Voxel spacing in mm along (Z, Y, X)."""
Affine: TypeAlias = npt.NDArray[np.float64]
"""4x4 matrix from voxel index (i, j, k, 1) = (X, Y, Z, 1) to RAS+ world mm (NIfTI convention)."""
FloatArray: TypeAlias = npt.NDArray[np.floating]
IntArray: TypeAlias = npt.NDArray[np.integer]
