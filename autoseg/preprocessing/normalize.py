"""Intensity normalisation per channel: CT, z-score, rescale or none.

The scheme of each channel is a :class:`ChannelNormalization`, chosen by the planner from the
dataset's channel names (:func:`scheme_for_channel_name`) and stored in plans.json.
Images are C×Z×Y×X; masks are boolean Z×Y×X.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from autoseg.errors import PlansError
from autoseg.log import get_logger
from autoseg.preprocessing.crop import nonzero_mask
from autoseg.strict import check_keys

__all__ = ["SCHEMES", "ChannelNormalization", "normalize_image", "scheme_for_channel_name"]

logger = get_logger(__name__)

SCHEMES = ("ct", "zscore", "rescale", "none")
"""Valid values of :attr:`ChannelNormalization.scheme`."""

_STAT_FIELDS = ("mean", "std", "lower", "upper")


def _optional_float(value: object, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise PlansError(f"normalization field {name!r} must be a number or null, got {value!r}")
    result = float(value)
    if not np.isfinite(result):
        raise PlansError(f"normalization field {name!r} must be finite, got {result}")
    return result


@dataclass(frozen=True)
class ChannelNormalization:
    """How one channel is normalised.

    Attributes:
        scheme: ``"ct"``: clip to [lower, upper], subtract mean, divide by std (dataset-wide
            foreground statistics; the planner uses the foreground 0.5/99.5 percentiles as
            bounds). ``"zscore"``: per-case mean and std. ``"rescale"``: per-case to [0, 1],
            clipping at the case's 0.5/99.5 percentiles, or at fixed ``lower``/``upper`` when
            both are given. ``"none"``: cast to float32 only.
        use_mask: Compute per-case statistics inside the mask only and set voxels outside it
            to 0 (ignored by ``"none"``).
        mean: CT only: dataset foreground mean (intensity units).
        std: CT only: dataset foreground standard deviation (> 0).
        lower: CT: clip bound (required); rescale: optional fixed lower bound.
        upper: CT: clip bound (required, >= lower); rescale: optional fixed upper bound.
    """

    scheme: str
    use_mask: bool
    mean: float | None = None
    std: float | None = None
    lower: float | None = None
    upper: float | None = None

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            guess = difflib.get_close_matches(str(self.scheme).lower(), SCHEMES, n=1, cutoff=0.0)
            raise PlansError(
                f"normalization scheme {self.scheme!r} is not one of {', '.join(SCHEMES)}; "
                f"did you mean {guess[0]!r}?"
            )
        if not isinstance(self.use_mask, (bool, np.bool_)):
            raise PlansError(f"use_mask must be true or false, got {self.use_mask!r}")
        object.__setattr__(self, "use_mask", bool(self.use_mask))
        for name in _STAT_FIELDS:
            object.__setattr__(self, name, _optional_float(getattr(self, name), name))
        self._check_statistics()

    def _check_statistics(self) -> None:
        given = {name for name in _STAT_FIELDS if getattr(self, name) is not None}
        if self.scheme == "ct":
            if given != set(_STAT_FIELDS):
                missing = sorted(set(_STAT_FIELDS) - given)
                raise PlansError(f"ct normalization needs mean, std, lower, upper; {missing=}")
            if self.std <= 0 or self.lower > self.upper:  # type: ignore[operator]
                raise PlansError(
                    "ct normalization needs std > 0 and lower <= upper, got "
                    f"std={self.std}, lower={self.lower}, upper={self.upper}"
                )
        elif self.scheme == "rescale":
            if given - {"lower", "upper"} or len(given) == 1:
                raise PlansError(f"rescale takes both or neither of lower/upper only, got {given}")
            if given and self.lower >= self.upper:  # type: ignore[operator]
                raise PlansError(f"rescale needs lower < upper, got {self.lower=}, {self.upper=}")
        elif given:
            raise PlansError(f"{self.scheme} normalization uses no stored statistics, got {given}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (every field, None as null)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChannelNormalization:
        """Strict inverse of :meth:`to_dict`: unknown or missing keys raise PlansError."""
        expected = [f.name for f in fields(cls)]
        check_keys("normalization entry", data, expected, PlansError)
        return cls(**{k: data[k] for k in expected})


def scheme_for_channel_name(name: str) -> str:
    """Default scheme for a dataset channel name.

    ``"CT"`` (any case) -> ``"ct"``; ``"noNorm"``/``"none"`` -> ``"none"``;
    ``"rescale"``/``"rescale_to_0_1"`` -> ``"rescale"``; anything else -> ``"zscore"``.
    """
    key = name.strip().lower()
    if key == "ct":
        return "ct"
    if key in ("nonorm", "none"):
        return "none"
    if key in ("rescale", "rescale_to_0_1"):
        return "rescale"
    return "zscore"


def _normalize_channel(
    x: np.ndarray,
    scheme: ChannelNormalization,
    mask: np.ndarray | None,
    percentiles: tuple[float, float],
    eps: float,
) -> None:
    """Normalise one float32 channel Z×Y×X in place (``mask`` given only when used)."""
    if scheme.scheme == "none":
        return
    if mask is not None and not mask.any():
        x.fill(0.0)
        return
    region = x if mask is None else x[mask]
    if scheme.scheme == "ct":
        np.clip(x, scheme.lower, scheme.upper, out=x)
        x -= np.float32(scheme.mean)
        x /= np.float32(max(scheme.std, eps))  # type: ignore[type-var]
    elif scheme.scheme == "zscore":
        mean, std = float(region.mean(dtype=np.float64)), float(region.std(dtype=np.float64))
        if std < eps:
            logger.debug("z-score: standard deviation %.3g below %.3g; guarded", std, eps)
        x -= np.float32(mean)
        x /= np.float32(max(std, eps))
    else:  # rescale
        if scheme.lower is not None and scheme.upper is not None:
            low, high = scheme.lower, scheme.upper
        else:
            low, high = (float(v) for v in np.percentile(region, percentiles))
        np.clip(x, low, high, out=x)
        x -= np.float32(low)
        x /= np.float32(max(high - low, eps))
    if mask is not None:
        x[~mask] = 0.0


def normalize_image(
    image: np.ndarray,
    schemes: Sequence[ChannelNormalization],
    mask: np.ndarray | None = None,
    *,
    rescale_percentiles: tuple[float, float] = (0.5, 99.5),
    eps: float = 1e-8,
) -> np.ndarray:
    """Normalise every channel of a C×Z×Y×X image with its scheme.

    Args:
        image: Intensities C×Z×Y×X, any real dtype.
        schemes: One :class:`ChannelNormalization` per channel.
        mask: Boolean Z×Y×X region (non-zero mask or ROI) for schemes with ``use_mask``;
            when None and a scheme needs it, :func:`~autoseg.preprocessing.crop.nonzero_mask`
            of the image is used.
        rescale_percentiles: Per-case percentiles (0-100) that map to 0 and 1 for
            ``"rescale"`` without fixed bounds.
        eps: Lower bound on a standard deviation or range before dividing by it.

    Returns:
        float32 array C×Z×Y×X (a new array; the input is not modified). With ``use_mask``
        a channel whose mask is empty becomes all zeros.
    """
    if image.ndim != 4:
        raise ValueError(f"image must be C×Z×Y×X, got shape {image.shape}")
    if len(schemes) != image.shape[0]:
        raise ValueError(f"{len(schemes)} normalization schemes for {image.shape[0]} channels")
    needs_mask = any(s.use_mask and s.scheme != "none" for s in schemes)
    if needs_mask and mask is None:
        mask = nonzero_mask(image)
    if mask is not None:
        mask = np.asarray(mask) != 0
        if mask.shape != image.shape[1:]:
            raise ValueError(f"mask shape {mask.shape} differs from image {image.shape[1:]}")
    out = np.empty(image.shape, dtype=np.float32)
    for channel, scheme in enumerate(schemes):
        out[channel] = image[channel]
        channel_mask = mask if scheme.use_mask else None
        _normalize_channel(out[channel], scheme, channel_mask, rescale_percentiles, eps)
    return out
