"""Image geometry: shape, spacing, origin and direction, in one stated convention.

Axis order (stated once, used everywhere): arrays are indexed ``[z, y, x]`` (``[c, z, y, x]``
with channels), i.e. the reverse of the file's voxel index order ``(i, j, k)`` — what
SimpleITK's ``GetArrayFromImage`` returns. ``shape`` and ``spacing`` follow array order
``(Z, Y, X)``. World coordinates are RAS+ millimetres (the NIfTI convention): ``origin`` is
the world position of voxel ``(0, 0, 0)`` as ``(x, y, z)``, and ``direction`` is the 3x3
matrix (row-major) whose columns are the unit vectors of the voxel axes i, j, k.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autoseg.typing import Affine, Shape3, Spacing3

__all__ = ["Geometry"]


@dataclass(frozen=True)
class Geometry:
    """Where an image's voxels sit in the world.

    Attributes:
        shape: Array shape along (Z, Y, X).
        spacing: Voxel size in mm along (Z, Y, X).
        origin: RAS+ position in mm of voxel (0, 0, 0), as (x, y, z).
        direction: Row-major 3x3 matrix; column n is the RAS+ unit vector of voxel axis n
            (i = X, j = Y, k = Z).
    """

    shape: Shape3
    spacing: Spacing3
    origin: tuple[float, float, float]
    direction: tuple[float, float, float, float, float, float, float, float, float]

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(v) for v in self.shape))
        object.__setattr__(self, "spacing", tuple(float(v) for v in self.spacing))
        object.__setattr__(self, "origin", tuple(float(v) for v in self.origin))
        object.__setattr__(self, "direction", tuple(float(v) for v in self.direction))
        if len(self.shape) != 3 or len(self.spacing) != 3 or len(self.origin) != 3:
            raise ValueError(f"Geometry needs 3 values per axis, got {self.shape=} {self.spacing=}")
        if len(self.direction) != 9:
            raise ValueError(f"direction must hold 9 values, got {len(self.direction)}")

    @property
    def direction_matrix(self) -> np.ndarray:
        """The 3x3 direction matrix (columns: voxel axes i, j, k in RAS+)."""
        return np.asarray(self.direction, dtype=np.float64).reshape(3, 3)

    @property
    def affine(self) -> Affine:
        """4x4 matrix from voxel index (i, j, k, 1) to RAS+ mm (NIfTI convention)."""
        affine = np.eye(4)
        spacing_ijk = np.asarray(self.spacing[::-1], dtype=np.float64)
        affine[:3, :3] = self.direction_matrix * spacing_ijk[None, :]
        affine[:3, 3] = self.origin
        return affine

    @classmethod
    def from_affine(cls, affine: np.ndarray, shape: Shape3) -> Geometry:
        """Build from a NIfTI-style affine and an array shape in (Z, Y, X) order."""
        affine = np.asarray(affine, dtype=np.float64)
        linear = affine[:3, :3]
        spacing_ijk = np.linalg.norm(linear, axis=0)
        # a zero column keeps spacing 0 (and a zero direction column): checks report it
        direction = linear / np.where(spacing_ijk == 0, 1.0, spacing_ijk)[None, :]
        return cls(
            shape=tuple(int(v) for v in shape),  # type: ignore[arg-type]
            spacing=tuple(float(v) for v in spacing_ijk[::-1]),  # type: ignore[arg-type]
            origin=tuple(float(v) for v in affine[:3, 3]),  # type: ignore[arg-type]
            direction=tuple(float(v) for v in direction.ravel()),  # type: ignore[arg-type]
        )

    def with_shape(self, shape: Shape3) -> Geometry:
        """The same world placement with another array shape."""
        return Geometry(shape, self.spacing, self.origin, self.direction)

    def differences(
        self,
        other: Geometry,
        *,
        spacing_tol: float = 1e-3,
        origin_tol_mm: float = 1e-3,
        direction_tol: float = 1e-4,
    ) -> list[str]:
        """Human-readable differences to ``other`` beyond the tolerances (empty if they agree).

        Spacing is compared relatively (``spacing_tol`` is a fraction), origin in mm and
        direction per matrix element.
        """
        problems = []
        if self.shape != other.shape:
            problems.append(f"shape {other.shape} != {self.shape}")
        values = np.concatenate([other.spacing, other.origin, self.spacing, self.origin])
        if not np.isfinite(values).all():  # NaN never equals NaN: say what is wrong instead
            problems.append(
                f"spacing {_fmt(other.spacing)}, origin {_fmt(other.origin)} vs spacing "
                f"{_fmt(self.spacing)}, origin {_fmt(self.origin)}: not all finite"
            )
            return problems
        a, b = np.asarray(self.spacing), np.asarray(other.spacing)
        if not np.allclose(a, b, rtol=spacing_tol, atol=0):
            problems.append(f"spacing {_fmt(b)} != {_fmt(a)}")
        if not np.allclose(self.origin, other.origin, rtol=0, atol=origin_tol_mm):
            problems.append(f"origin {_fmt(other.origin)} != {_fmt(self.origin)}")
        if not np.allclose(self.direction, other.direction, rtol=0, atol=direction_tol):
            problems.append("direction differs")
        return problems

    def allclose(self, other: Geometry, **tolerances: float) -> bool:
        """True when :meth:`differences` finds nothing."""
        return not self.differences(other, **tolerances)

    def to_dict(self) -> dict[str, list[float] | list[int]]:
        """Plain-JSON form."""
        return {
            "shape": list(self.shape),
            "spacing": list(self.spacing),
            "origin": list(self.origin),
            "direction": list(self.direction),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Geometry:  # type: ignore[type-arg]
        """Inverse of :meth:`to_dict`."""
        return cls(
            shape=tuple(data["shape"]),  # type: ignore[arg-type]
            spacing=tuple(data["spacing"]),  # type: ignore[arg-type]
            origin=tuple(data["origin"]),  # type: ignore[arg-type]
            direction=tuple(data["direction"]),  # type: ignore[arg-type]
        )


def _fmt(values: object) -> str:
    return "(" + ", ".join(f"{float(v):.4g}" for v in np.asarray(values).ravel()) + ")"
