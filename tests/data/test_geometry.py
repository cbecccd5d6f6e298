from __future__ import annotations

import numpy as np
import pytest

from autoseg.data.geometry import Geometry


def _oblique_affine() -> np.ndarray:
    angle = np.deg2rad(17.0)
    rot = np.array(
        [[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0], [0, 0, 1]]
    )
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([0.7, 0.8, 3.0])
    affine[:3, 3] = [-12.5, 30.25, 4.0]
    return affine


def test_from_affine_orders_spacing_as_z_y_x() -> None:
    geometry = Geometry.from_affine(_oblique_affine(), (10, 20, 30))
    assert geometry.shape == (10, 20, 30)
    np.testing.assert_allclose(geometry.spacing, (3.0, 0.8, 0.7))
    np.testing.assert_allclose(geometry.origin, (-12.5, 30.25, 4.0))


def test_affine_round_trip() -> None:
    affine = _oblique_affine()
    geometry = Geometry.from_affine(affine, (4, 5, 6))
    np.testing.assert_allclose(geometry.affine, affine, atol=1e-12)


def test_differences_name_what_differs() -> None:
    a = Geometry((4, 5, 6), (3.0, 1.0, 1.0), (0, 0, 0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    b = Geometry((4, 5, 6), (3.5, 1.0, 1.0), (0, 0, 2), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    problems = a.differences(b)
    assert any(p.startswith("spacing") for p in problems)
    assert any(p.startswith("origin") for p in problems)
    assert a.allclose(a) and not a.allclose(b)


def test_dict_round_trip_and_validation() -> None:
    geometry = Geometry.from_affine(_oblique_affine(), (4, 5, 6))
    assert Geometry.from_dict(geometry.to_dict()) == geometry
    with pytest.raises(ValueError, match="3 values"):
        Geometry((4, 5), (1.0, 1.0, 1.0), (0, 0, 0), (1, 0, 0, 0, 1, 0, 0, 0, 1))  # type: ignore[arg-type]
