"""Dataset fingerprint: spacings, shapes, foreground intensities, class balance, components.

``fingerprint_case`` is pure (one case in, one :class:`CaseFingerprint` out) and runs in
worker processes; ``aggregate`` turns the per-case results into the dataset-wide
:class:`Fingerprint` written to ``fingerprint.json``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from autoseg import __version__
from autoseg.data.case_io import load_case
from autoseg.data.dataset import Case, Dataset
from autoseg.errors import DatasetError
from autoseg.frozendict import FrozenDict
from autoseg.preprocessing.crop import crop_to_box, nonzero_bounding_box
from autoseg.typing import Shape3, Spacing3

__all__ = [
    "FINGERPRINT_SCHEMA_VERSION",
    "CaseFingerprint",
    "Fingerprint",
    "IntensityStats",
    "aggregate",
    "fingerprint_case",
]

FINGERPRINT_SCHEMA_VERSION = 2
"""2: per-class centroids (``CaseFingerprint.class_centroids``)."""
SAMPLES_PER_CASE = 10_000
"""Foreground voxels sampled per case and channel for intensity statistics."""
MAX_COMPONENTS_RECORDED = 20
"""Largest connected components recorded per class and case (sizes in voxels)."""


@dataclass(frozen=True)
class IntensityStats:
    """Statistics of foreground intensities of one channel."""

    mean: float
    std: float
    median: float
    p00_5: float
    p99_5: float
    min: float
    max: float

    @classmethod
    def of(cls, values: np.ndarray) -> IntensityStats:
        """Statistics of a 1D sample (zeros when the sample is empty)."""
        if values.size == 0:
            return cls(0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        values = values.astype(np.float64, copy=False)
        p00_5, median, p99_5 = np.percentile(values, [0.5, 50.0, 99.5])
        return cls(
            float(values.mean()),
            float(values.std()),
            float(median),
            float(p00_5),
            float(p99_5),
            float(values.min()),
            float(values.max()),
        )


@dataclass(frozen=True)
class CaseFingerprint:
    """What the planner needs to know about one training case.

    Attributes:
        spacing: Original spacing (mm, Z/Y/X).
        shape: Original shape (Z, Y, X).
        shape_after_crop: Shape after cropping to the non-zero (or ROI) bounding box.
        intensity: Foreground intensity statistics per channel.
        voxels_per_class: Label value -> voxel count inside the crop box (every declared
            label, zeros included).
        component_sizes: Label value -> sizes (voxels) of its largest connected components
            (26-connectivity), largest first, at most ``MAX_COMPONENTS_RECORDED``.
        num_components: Label value -> number of connected components.
        class_centroids: Label value -> centre of mass (mm from the crop box's first corner,
            Z/Y/X, in the array's own orientation) of each foreground class present.
    """

    case_id: str
    spacing: Spacing3
    shape: Shape3
    shape_after_crop: Shape3
    intensity: tuple[IntensityStats, ...]
    voxels_per_class: Mapping[int, int]
    component_sizes: Mapping[int, tuple[int, ...]]
    num_components: Mapping[int, int]
    class_centroids: Mapping[int, tuple[float, float, float]] = field(default_factory=FrozenDict)

    @property
    def classes_present(self) -> tuple[int, ...]:
        """Foreground label values with at least one voxel."""
        return tuple(v for v, n in sorted(self.voxels_per_class.items()) if v != 0 and n > 0)

    @property
    def crop_ratio(self) -> float:
        """Volume after cropping over the original volume."""
        return float(np.prod(self.shape_after_crop) / np.prod(self.shape))


@dataclass(frozen=True)
class Fingerprint:
    """Dataset-wide fingerprint (``fingerprint.json``)."""

    dataset_name: str
    channel_names: tuple[str, ...]
    labels: Mapping[str, int]
    cases: tuple[CaseFingerprint, ...]
    per_channel: tuple[IntensityStats, ...]
    class_voxel_fraction: Mapping[int, float]
    class_case_fraction: Mapping[int, float]
    median_spacing: Spacing3
    median_shape_after_crop: Shape3
    inputs: Mapping[str, str] = field(default_factory=dict)
    schema_version: int = FINGERPRINT_SCHEMA_VERSION
    autoseg_version: str = __version__

    @property
    def spacings(self) -> list[Spacing3]:
        return [c.spacing for c in self.cases]

    @property
    def shapes_after_crop(self) -> list[Shape3]:
        return [c.shape_after_crop for c in self.cases]

    @property
    def total_voxels_after_crop(self) -> int:
        return int(sum(int(np.prod(c.shape_after_crop)) for c in self.cases))

    @property
    def median_crop_ratio(self) -> float:
        return float(np.median([c.crop_ratio for c in self.cases]))


def fingerprint_case(case: Case, dataset: Dataset) -> tuple[CaseFingerprint, np.ndarray]:
    """Fingerprint one case.

    Returns:
        The case fingerprint and, for dataset-wide statistics, the sampled foreground
        intensities (float32, channels × samples; fewer samples for tiny foregrounds).

    Raises:
        DatasetError: if the case cannot be loaded (see ``load_case``).
    """
    arrays = load_case(case, dataset)
    if arrays.label is None:
        raise DatasetError("training case has no label map", case_id=case.case_id)
    box = nonzero_bounding_box(arrays.image, arrays.roi)
    image = crop_to_box(arrays.image, box)
    label = crop_to_box(arrays.label, box)
    seed = int.from_bytes(hashlib.sha256(case.case_id.encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    labelled = label > 0
    if dataset.ignore_label is not None:  # unannotated voxels are not foreground
        labelled &= label != dataset.ignore_label
    foreground = np.flatnonzero(labelled)
    if foreground.size > SAMPLES_PER_CASE:
        foreground = rng.choice(foreground, SAMPLES_PER_CASE, replace=False)
    samples = image.reshape(image.shape[0], -1)[:, foreground].astype(np.float32)
    counts = np.bincount(label.ravel().astype(np.int64), minlength=max(dataset.label_values) + 1)
    sizes: dict[int, tuple[int, ...]] = {}
    numbers: dict[int, int] = {}
    centroids: dict[int, tuple[float, float, float]] = {}
    spacing = np.asarray(arrays.geometry.spacing, dtype=np.float64)
    structure = np.ones((3, 3, 3), dtype=bool)
    for value in dataset.foreground_labels:
        if value >= counts.size or counts[value] == 0:
            sizes[value], numbers[value] = (), 0
            continue
        mask = label == value
        components, n = ndimage.label(mask, structure=structure)
        component_voxels = np.sort(np.bincount(components.ravel())[1:])[::-1]
        sizes[value] = tuple(int(v) for v in component_voxels[:MAX_COMPONENTS_RECORDED])
        numbers[value] = int(n)
        centre = np.asarray(ndimage.center_of_mass(mask)) * spacing
        centroids[value] = (float(centre[0]), float(centre[1]), float(centre[2]))
    fingerprint = CaseFingerprint(
        case_id=case.case_id,
        spacing=arrays.geometry.spacing,
        shape=arrays.geometry.shape,
        shape_after_crop=tuple(int(b - a) for a, b in box),  # type: ignore[arg-type]
        intensity=tuple(IntensityStats.of(s) for s in samples),
        voxels_per_class=FrozenDict(
            {v: int(counts[v]) if v < counts.size else 0 for v in dataset.label_values}
        ),
        component_sizes=FrozenDict(sizes),
        num_components=FrozenDict(numbers),
        class_centroids=FrozenDict(centroids),
    )
    return fingerprint, samples


def aggregate(
    dataset: Dataset,
    cases: Sequence[CaseFingerprint],
    samples: Sequence[np.ndarray],
    inputs: Mapping[str, str],
) -> Fingerprint:
    """Combine per-case fingerprints and intensity samples into the dataset fingerprint."""
    pooled = [np.concatenate([s[c] for s in samples]) for c in range(dataset.num_channels)]
    total = {v: sum(c.voxels_per_class.get(v, 0) for c in cases) for v in dataset.label_values}
    all_voxels = max(sum(total.values()), 1)
    return Fingerprint(
        dataset_name=dataset.name,
        channel_names=dataset.channel_names,
        labels=FrozenDict(dict(dataset.labels)),
        cases=tuple(cases),
        per_channel=tuple(IntensityStats.of(p) for p in pooled),
        class_voxel_fraction=FrozenDict({v: n / all_voxels for v, n in total.items()}),
        class_case_fraction=FrozenDict(
            {
                v: sum(v in c.classes_present for c in cases) / len(cases)
                for v in dataset.foreground_labels
            }
        ),
        median_spacing=tuple(float(v) for v in np.median([c.spacing for c in cases], axis=0)),  # type: ignore[arg-type]
        median_shape_after_crop=tuple(  # type: ignore[arg-type]
            round(v) for v in np.median([c.shape_after_crop for c in cases], axis=0)
        ),
        inputs=FrozenDict(dict(inputs)),
    )
