"""What phantom dataset to generate: :class:`PhantomSpec` (plain values, checked on creation).

The generator is :mod:`autoseg.data.synthetic`; case synthesis is :mod:`autoseg.data.phantom`.
Nothing heavy is imported here, so the ``autoseg demo-data`` options can take their defaults
from the spec when the CLI starts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from autoseg.data.file_endings import SUPPORTED_ENDINGS
from autoseg.errors import ConfigError
from autoseg.strict import check_keys, did_you_mean

__all__ = ["MAX_NESTED_CLASSES", "SPACING_MODES", "PhantomSpec"]

SPACING_MODES = ("iso", "varied", "aniso", "thick")
MAX_NESTED_CLASSES = 4
_NESTED_NAMES = ("lesion", "core", "necrosis", "nucleus")
_REGION_NAMES = ("whole tumour", "tumour core", "enhancing tumour", "nucleus")
"""Region k unites the nested classes k..n (BraTS: edema 1, non-enhancing core 2,
enhancing 3 give whole tumour [1, 2, 3], tumour core [2, 3], enhancing tumour [3])."""
_RARE_NAME = "satellite"
_OPTIONAL = {"regions": False, "sparse_slices": 0}
"""Fields written into dataset.json only when they differ from these defaults, so datasets
made before they existed keep their bytes."""
_CASTS: dict[str, type] = {"int": int, "float": float, "bool": bool, "str": str}


@dataclass(frozen=True)
class PhantomSpec:
    """What phantom dataset to generate.

    Attributes:
        num_train_cases: Labelled training cases (>= 1).
        num_test_cases: Held-out cases written to imagesTs/labelsTs (>= 0).
        channels: Modality names, e.g. ("T1", "FLAIR") (MRI-like contrasts; known: T1,
            T1CE, T2, FLAIR, PD, others get a derived contrast) or ("CT",) (Hounsfield
            units, air at -1000).
        nested_classes: Nested sub-regions of the lesion, classes 1..n (1 to 4).
        rare_class: Add a small rare class n + 1 (a few hundred voxels per case).
        rare_class_presence: Fraction of training cases holding the rare class (the first
            one always does; held-out cases always do, so per-class scores are defined).
        spacing: "iso" (1 mm), "varied" (Z 0.9-1.6 mm, in-plane 0.8-1.2 mm), "aniso"
            (Z 3-5 mm, in-plane 0.65-0.85 mm), drawn per case, or "thick" (0.7 x 0.7 x 5 mm
            for every case: thick-slice MRI such as prostate or cardiac cine, where a 2D
            U-Net is planned and often wins).
        base_shape: Typical array shape (Z, Y, X) in voxels; each case's field of view
            varies by +-7 % and its shape with its spacing.
        with_roi: Write body masks to roisTr/roisTs.
        cases_per_patient: Consecutive cases sharing a patient (same anatomy, other
            acquisition); > 1 writes ``groups`` into dataset.json.
        noise: Gaussian noise std as a fraction of the soft-tissue range (1 MRI unit before
            scaling, 200 HU for CT).
        bias_field: Strength of the multiplicative MRI bias field (exp(+-strength)).
        file_ending: Image file ending.
        name: Dataset name in dataset.json.
        seed: Seed of every random draw.
        regions: Declare the nested classes as nested regions for region-based training
            (nnU-Net style list-valued labels and ``regions_class_order``; see
            :attr:`labels`): a BraTS-like dataset with ``nested_classes=3``.
        sparse_slices: Annotate only every n-th axial (Z) slice of the training cases; the
            other voxels get the ``ignore`` label (the highest value). 0: dense labels.
            Held-out cases (labelsTs) stay dense.
    """

    num_train_cases: int = 10
    num_test_cases: int = 3
    channels: tuple[str, ...] = ("T1", "FLAIR")
    nested_classes: int = 2
    rare_class: bool = True
    rare_class_presence: float = 0.85
    spacing: str = "varied"
    base_shape: tuple[int, int, int] = (48, 56, 56)
    with_roi: bool = False
    cases_per_patient: int = 1
    noise: float = 0.05
    bias_field: float = 0.2
    file_ending: str = ".nii.gz"
    name: str = "Phantom"
    seed: int = 0
    regions: bool = False
    sparse_slices: int = 0

    def __post_init__(self) -> None:
        for spec_field in fields(self):  # JSON and numpy values -> plain Python types
            cast = _CASTS.get(str(spec_field.type))
            if cast is not None:
                object.__setattr__(self, spec_field.name, cast(getattr(self, spec_field.name)))
        object.__setattr__(self, "channels", tuple(str(c) for c in self.channels))
        object.__setattr__(self, "base_shape", tuple(int(v) for v in self.base_shape))
        self._validate()

    def _validate(self) -> None:
        _require(
            self.num_train_cases >= 1, f"num_train_cases must be >= 1, got {self.num_train_cases}"
        )
        _require(
            self.num_test_cases >= 0, f"num_test_cases must be >= 0, got {self.num_test_cases}"
        )
        _require(
            bool(self.channels) and all(self.channels),
            f"channels must name at least one modality, got {self.channels}",
        )
        _require(
            1 <= self.nested_classes <= MAX_NESTED_CLASSES,
            f"nested_classes must be in 1..{MAX_NESTED_CLASSES}, got {self.nested_classes}",
        )
        _require(
            0.0 <= self.rare_class_presence <= 1.0,
            f"rare_class_presence must be in [0, 1], got {self.rare_class_presence}",
        )
        _require(
            len(self.base_shape) == 3 and min(self.base_shape) >= 8,
            f"base_shape must be 3 sizes >= 8 voxels (Z, Y, X), got {self.base_shape}",
        )
        _require(
            self.cases_per_patient >= 1,
            f"cases_per_patient must be >= 1, got {self.cases_per_patient}",
        )
        _require(
            self.noise >= 0 and self.bias_field >= 0,
            f"noise and bias_field must be >= 0, got {self.noise=}, {self.bias_field=}",
        )
        _require(
            self.file_ending in SUPPORTED_ENDINGS,
            f"file_ending must be one of {', '.join(SUPPORTED_ENDINGS)}, got {self.file_ending!r}",
        )
        _require(self.sparse_slices >= 0, f"sparse_slices must be >= 0, got {self.sparse_slices}")
        _require(
            self.spacing in SPACING_MODES,
            f"spacing must be one of {', '.join(SPACING_MODES)}, got {self.spacing!r}"
            + did_you_mean(self.spacing, SPACING_MODES),
        )

    @property
    def ignore_label(self) -> int | None:
        """The ignore label's value (sparse annotation), or None."""
        return self.nested_classes + 1 + int(self.rare_class) if self.sparse_slices else None

    @property
    def labels(self) -> dict[str, Any]:
        """dataset.json ``labels``: background 0, nested classes 1..n, then the rare class.

        With ``regions``, the nested classes are declared as nested regions instead (region
        k = classes k..n, e.g. "whole tumour": [1, 2, 3]); the rare class is its own
        region. With ``sparse_slices``, ``ignore`` follows as the highest value.
        """
        labels: dict[str, Any] = {"background": 0}
        n = self.nested_classes
        if self.regions:
            labels.update({_REGION_NAMES[k]: list(range(k + 1, n + 1)) for k in range(n)})
        else:
            labels.update({_NESTED_NAMES[i]: i + 1 for i in range(n)})
        if self.rare_class:
            labels[_RARE_NAME] = n + 1
        if self.ignore_label is not None:
            labels["ignore"] = self.ignore_label
        return labels

    @property
    def regions_class_order(self) -> list[int] | None:
        """dataset.json ``regions_class_order`` (region k paints class k), or None."""
        if not self.regions:
            return None
        return list(range(1, self.nested_classes + 1 + int(self.rare_class)))

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (tuples become lists; optional fields only when set)."""
        data = asdict(self)
        data["channels"] = list(self.channels)
        data["base_shape"] = list(self.base_shape)
        for name, default in _OPTIONAL.items():
            if data[name] == default:
                del data[name]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PhantomSpec:
        """Inverse of :meth:`to_dict`.

        Raises:
            ConfigError: on unknown or missing keys (listing the expected keys) or bad values.
        """
        full = {**_OPTIONAL, **data} if isinstance(data, dict) else data
        check_keys("phantom spec", full, [f.name for f in fields(cls)])
        return cls(**full)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)
