"""Synthesis of one phantom case as arrays: anatomy, label map and channel intensities.

Anatomy is drawn in millimetres around the field-of-view centre, so a patient's scans
taken at different spacings show the same structures: a body ellipsoid over an air
background (with a fat shell and a posterior bone), an organ inside it, a lesion in the
organ whose nested sub-regions are classes ``1..n`` (each inside the previous one), and a
small rare blob elsewhere in the body (class ``n + 1``). Each tissue has its own mean
intensity per channel (MRI-like contrasts keyed by modality name, or Hounsfield units for
``CT``); smooth texture, partial-volume blur, a multiplicative bias field (MRI) and
Gaussian noise are added. Arrays are (Z, Y, X); spacing in mm along (Z, Y, X).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from autoseg.data.geometry import Geometry
from autoseg.data.phantom_spec import PhantomSpec

__all__ = ["NOMINAL_SPACING", "PhantomCase", "synthesize_case", "tissue_profile"]

NOMINAL_SPACING = {
    "iso": (1.0, 1.0, 1.0),
    "varied": (1.2, 1.0, 1.0),
    "aniso": (4.0, 0.75, 0.75),
    "thick": (5.0, 0.7, 0.7),
}
"""Mean spacing (mm, Z, Y, X) per spacing mode (``phantom_spec.SPACING_MODES``); the field of
view is base_shape x this."""
_SPACING_RANGES = {
    "iso": ((1.0, 1.0), (1.0, 1.0)),
    "varied": ((0.9, 1.6), (0.8, 1.2)),
    "aniso": ((3.0, 5.0), (0.65, 0.85)),
    "thick": ((5.0, 5.0), (0.7, 0.7)),
}
"""(Z range, in-plane range) of the spacing in mm drawn per case."""
_DIRECTION = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
"""LPS-like orientation, as NIfTI files converted from DICOM usually have."""

# Tissue indices: 0 background, 1 fat, 2 body, 3 organ, 4 bone, 5.. labelled classes.
_NUM_ANATOMY = 5
# Per modality: fat, body, organ, bone, nested classes (up to 4), rare class (x scale).
_Profile = tuple[float, float, float, float, tuple[float, ...], float]
_MRI_PROFILES: dict[str, _Profile] = {
    "T1": (0.90, 0.50, 0.62, 0.12, (0.34, 0.18, 0.80, 0.45), 0.95),
    "T1CE": (0.85, 0.48, 0.58, 0.12, (0.52, 0.92, 0.30, 0.70), 0.30),
    "T2": (0.70, 0.40, 0.52, 0.10, (0.78, 0.95, 0.60, 0.25), 0.20),
    "FLAIR": (0.60, 0.36, 0.42, 0.08, (0.82, 0.58, 0.95, 0.25), 0.10),
    "PD": (0.75, 0.55, 0.60, 0.15, (0.75, 0.85, 0.35, 0.95), 0.30),
}
_ALIASES = {"T1W": "T1", "T1GD": "T1CE", "T1C": "T1CE", "T2W": "T2", "T2FLAIR": "FLAIR"}
_CT_PROFILE: _Profile = (-100.0, 40.0, 65.0, 700.0, (125.0, 5.0, 190.0, -45.0), 320.0)
_DEFAULT_VOXELS = 48 * 56 * 56
_CT_AIR = -1000.0
_CT_RANGE_HU = 200.0
"""Soft-tissue intensity range of CT in HU: noise and texture are fractions of it."""


@dataclass(frozen=True)
class PhantomCase:
    """One synthesized case.

    Attributes:
        channels: One (Z, Y, X) array per channel: float32 (MRI) or int16 HU (CT).
        label: uint8 (Z, Y, X) label map.
        roi: uint8 (Z, Y, X) body mask (1 inside the body).
        geometry: Shape, spacing (mm), origin and direction of every array.
    """

    channels: tuple[np.ndarray, ...]
    label: np.ndarray
    roi: np.ndarray
    geometry: Geometry


@dataclass(frozen=True)
class _Blob:
    """A deformed, z-rotated ellipsoid in mm (centre and radii along Z, Y, X)."""

    center: tuple[float, float, float]
    radii: tuple[float, float, float]
    angle: float = 0.0
    wobble: float = 0.0
    lobes: int = 3
    phase: float = 0.0

    def level(self, zz: np.ndarray, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        """< 1 inside, > 1 outside (a normalised radius, modulated by the wobble)."""
        dz, dy, dx = zz - self.center[0], yy - self.center[1], xx - self.center[2]
        cos, sin = np.cos(self.angle), np.sin(self.angle)
        ry, rx = cos * dy + sin * dx, cos * dx - sin * dy
        nz, ny, nx = dz / self.radii[0], ry / self.radii[1], rx / self.radii[2]
        radius = np.sqrt(nz**2 + ny**2 + nx**2)
        if self.wobble == 0.0:
            return radius
        theta = np.arctan2(ny, nx)
        bump = np.sin(self.lobes * theta + self.phase) * np.cos(2.0 * nz / np.maximum(radius, 1e-6))
        return radius / (1.0 + self.wobble * bump)

    def scaled(self, factor: float) -> _Blob:
        return _Blob(
            self.center,
            tuple(r * factor for r in self.radii),  # type: ignore[arg-type]
            self.angle,
            self.wobble,
            self.lobes,
            self.phase,
        )


@dataclass(frozen=True)
class _Anatomy:
    body: _Blob
    organ: _Blob
    bone: _Blob
    nested: tuple[_Blob, ...]
    rare: _Blob | None


def tissue_profile(channel: str, nested_classes: int, rare: bool) -> np.ndarray:
    """Mean intensity per tissue index for one channel (x scale for MRI, HU for CT).

    Index order: background, fat, body, organ, bone, nested classes 1..n, rare class.
    Unknown MRI modality names get a deterministic profile derived from the name.
    """
    key = _ALIASES.get(channel.upper().replace("-", "").replace("_", ""), channel.upper())
    if key == "CT":
        fat, body, organ, bone, nested, rare_value = _CT_PROFILE
        background = _CT_AIR
    else:
        fat, body, organ, bone, nested, rare_value = _MRI_PROFILES.get(key) or _named_profile(key)
        background = 0.0
    values = [background, fat, body, organ, bone, *nested[:nested_classes]]
    return np.asarray(values + ([rare_value] if rare else []), dtype=np.float64)


def _named_profile(name: str) -> _Profile:
    """A reproducible profile for an unknown modality whose labelled classes stay distinct."""
    rng = np.random.default_rng(zlib.crc32(name.encode("utf-8")))
    for _ in range(1000):
        values = rng.uniform(0.1, 0.95, size=9)
        labelled = np.sort(np.concatenate([values[1:3], values[4:9]]))
        if np.diff(labelled).min() >= 0.08:
            break
    return (values[0], values[1], values[2], values[3], tuple(values[4:8]), values[8])


def sample_spacing(mode: str, rng: np.random.Generator) -> tuple[float, float, float]:
    """A case's spacing in mm (Z, Y, X) for spacing mode ``mode`` (in-plane Y = X)."""
    (z_low, z_high), (p_low, p_high) = _SPACING_RANGES[mode]
    in_plane = round(float(rng.uniform(p_low, p_high)), 4)
    return round(float(rng.uniform(z_low, z_high)), 4), in_plane, in_plane


def synthesize_case(
    spec: PhantomSpec,
    anatomy_rng: np.random.Generator,
    acquisition_rng: np.random.Generator,
    *,
    with_rare: bool,
) -> PhantomCase:
    """Synthesize one case.

    Args:
        spec: The dataset specification (channels, classes, spacing mode, shape, noise).
        anatomy_rng: Draws the anatomy (shared by the scans of one patient).
        acquisition_rng: Draws spacing, field of view, bias field, intensity scale, noise.
        with_rare: Whether this case contains the rare class.
    """
    nominal = np.asarray(NOMINAL_SPACING[spec.spacing])
    fov_mm = np.asarray(spec.base_shape) * nominal
    anatomy = _sample_anatomy(anatomy_rng, fov_mm, spec, with_rare=with_rare)
    spacing = sample_spacing(spec.spacing, acquisition_rng)
    fov_case = fov_mm * acquisition_rng.uniform(0.93, 1.07, size=3)
    shape = tuple(max(8, round(f / s)) for f, s in zip(fov_case, spacing))
    grid = [(np.arange(n) - (n - 1) / 2.0) * s for n, s in zip(shape, spacing)]
    zz, yy, xx = grid[0][:, None, None], grid[1][None, :, None], grid[2][None, None, :]
    tissue, label = _paint(anatomy, zz, yy, xx, spec.nested_classes)
    body = tissue > 0
    channels = tuple(
        _intensities(tissue, body, name, spec, acquisition_rng) for name in spec.channels
    )
    offset = acquisition_rng.uniform(-20.0, 20.0, size=3)
    direction = np.asarray(_DIRECTION).reshape(3, 3)
    centre_ijk = (np.asarray(shape[::-1]) - 1) / 2.0 * np.asarray(spacing[::-1])
    origin = offset - direction @ centre_ijk
    geometry = Geometry(shape, spacing, tuple(np.round(origin, 4)), _DIRECTION)  # type: ignore[arg-type]
    return PhantomCase(channels, label, body.astype(np.uint8), geometry)


def _sample_anatomy(
    rng: np.random.Generator, fov_mm: np.ndarray, spec: PhantomSpec, *, with_rare: bool
) -> _Anatomy:
    body_radii = 0.42 * fov_mm * rng.uniform(0.92, 1.04, size=3)
    body = _Blob(
        tuple(0.04 * fov_mm * rng.uniform(-1, 1, size=3)),
        tuple(body_radii),
        float(rng.uniform(-0.3, 0.3)),
        0.04,
        2,
        float(rng.uniform(0, 2 * np.pi)),
    )
    inner = float(body_radii.min())
    bone_center = np.asarray(body.center) + np.array([0.0, 0.74 * body_radii[1], 0.0])
    bone_radius = 0.11 * body_radii[1]
    bone = _Blob(tuple(bone_center), (body_radii[0] * 1.5, bone_radius, bone_radius * 1.3))
    organ = _blob_inside(rng, body.center, inner * 0.08, inner * 0.72, wobble=0.08)
    direction = rng.standard_normal(3)
    direction /= max(float(np.linalg.norm(direction)), 1e-6)
    lesion_center = np.asarray(organ.center) + direction * inner * rng.uniform(0.15, 0.3)
    nested = [_blob_inside(rng, tuple(lesion_center), 0.0, inner * 0.5, wobble=0.15)]
    for _ in range(spec.nested_classes - 1):
        parent = nested[-1]
        nested.append(
            _blob_inside(
                rng, parent.center, min(parent.radii) * 0.2, min(parent.radii) * 0.65, wobble=0.12
            )
        )
    rare = None
    if with_rare:
        # A few hundred voxels at the default size, fewer in smaller phantoms.
        fraction = min(1.0, float(np.prod(spec.base_shape)) / _DEFAULT_VOXELS)
        voxels = max(rng.uniform(400, 700) * fraction, 15.0)
        voxel_mm3 = float(np.prod(NOMINAL_SPACING[spec.spacing]))
        radius = (3.0 * voxels * voxel_mm3 / (4.0 * np.pi)) ** (1 / 3)
        for shrink in (1.0, 0.8, 0.65, 0.5):  # smaller when no place fits (tiny phantoms)
            rare = _place_rare(rng, body, nested[0], bone, radius * shrink, -direction)
            if rare is not None:
                break
    return _Anatomy(body, organ, bone, tuple(nested), rare)


def _blob_inside(
    rng: np.random.Generator,
    center: tuple[float, ...],
    offset_mm: float,
    radius_mm: float,
    *,
    wobble: float,
) -> _Blob:
    """A blob of about ``radius_mm`` whose centre lies within ``offset_mm`` of ``center``."""
    shift = rng.uniform(-1, 1, size=3) * offset_mm
    radii = radius_mm * rng.uniform(0.85, 1.15, size=3)
    return _Blob(
        tuple(np.asarray(center) + shift),
        tuple(radii),
        float(rng.uniform(0, np.pi)),
        wobble,
        int(rng.integers(2, 5)),
        float(rng.uniform(0, 2 * np.pi)),
    )


def _place_rare(
    rng: np.random.Generator,
    body: _Blob,
    lesion: _Blob,
    bone: _Blob,
    radius: float,
    away: np.ndarray,
) -> _Blob | None:
    """A small sphere inside the body, clear of the lesion and the bone (None if none fits).

    Candidates lie near the body's rim, around the direction ``away`` from the lesion.
    """
    clearance = 1.0 + (radius + 1.0) / min(lesion.radii)
    rim = 1.0 - (radius + min(2.0, 0.1 * min(body.radii))) / min(body.radii)
    for attempt in range(100):
        direction = away + rng.standard_normal(3) * (0.3 + attempt / 50)
        direction /= max(float(np.linalg.norm(direction)), 1e-6)
        depth = rng.uniform(0.55, 0.95) * rim
        point = np.asarray(body.center) + direction * depth * np.asarray(body.radii)
        zz, yy, xx = (np.asarray(v) for v in point)
        far = lesion.level(zz, yy, xx) > clearance
        if far and body.level(zz, yy, xx) < rim and bone.scaled(1.6).level(zz, yy, xx) > 1:
            return _Blob(
                tuple(point),
                (radius, radius, radius),
                wobble=0.1,
                phase=float(rng.uniform(0, 2 * np.pi)),
            )
    return None


def _paint(
    anatomy: _Anatomy, zz: np.ndarray, yy: np.ndarray, xx: np.ndarray, nested_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Tissue index map (int8) and label map (uint8) on the grid."""
    body_level = anatomy.body.level(zz, yy, xx)
    shape = body_level.shape
    tissue = np.zeros(shape, dtype=np.int8)
    label = np.zeros(shape, dtype=np.uint8)
    body = body_level <= 1.0
    shell = 1.0 - 2.5 / float(min(anatomy.body.radii))
    tissue[body] = 1
    tissue[body_level <= shell] = 2
    inner = tissue == 2
    tissue[inner & (anatomy.organ.level(zz, yy, xx) <= 1)] = 3
    tissue[body & (anatomy.bone.level(zz, yy, xx) <= 1)] = 4
    region = inner
    for index, blob in enumerate(anatomy.nested, start=1):
        region = region & (blob.level(zz, yy, xx) <= 1)
        tissue[region] = _NUM_ANATOMY + index - 1
        label[region] = index
    if anatomy.rare is not None:
        rare = inner & (anatomy.rare.level(zz, yy, xx) <= 1) & (label == 0)
        tissue[rare] = _NUM_ANATOMY + nested_classes
        label[rare] = nested_classes + 1
    return tissue, label


def _intensities(
    tissue: np.ndarray,
    body: np.ndarray,
    channel: str,
    spec: PhantomSpec,
    rng: np.random.Generator,
) -> np.ndarray:
    """One channel: tissue means, texture, partial-volume blur, bias field (MRI), noise."""
    profile = tissue_profile(channel, spec.nested_classes, spec.rare_class)
    is_ct = channel.upper() == "CT"
    unit = _CT_RANGE_HU if is_ct else 1.0
    texture = ndimage.gaussian_filter(rng.standard_normal(tissue.shape), 1.5)
    texture *= 0.03 * unit / max(float(texture.std()), 1e-6)
    image = ndimage.gaussian_filter(profile[tissue] + texture * body, 0.6)
    noise = rng.standard_normal(tissue.shape) * spec.noise * unit
    if is_ct:
        image = np.clip(np.round(image + noise), -1024, 3071)
        return image.astype(np.int16)
    scale = float(rng.uniform(600.0, 1600.0))
    image = (image * _bias_field(tissue.shape, spec.bias_field, rng) + noise) * scale
    return np.where(body, np.maximum(image, 0.0), 0.0).astype(np.float32)


def _bias_field(shape: tuple[int, ...], strength: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth multiplicative field exp(strength * b), b in [-1, 1] (low spatial frequency)."""
    coords = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij", sparse=True)
    field = np.zeros(shape)
    for _ in range(3):
        frequency = rng.uniform(-1.2, 1.2, size=3)
        phase = rng.uniform(0, 2 * np.pi)
        field = field + np.cos(sum(f * c for f, c in zip(frequency, coords)) * np.pi + phase)
    field /= max(float(np.abs(field).max()), 1e-6)
    return np.exp(strength * field)
