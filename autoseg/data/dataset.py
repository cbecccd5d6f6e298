"""The one in-memory description of a labelled dataset, whatever its on-disk format.

Datasets are loaded by :func:`autoseg.data.formats.load_dataset` (format detection).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from autoseg.errors import DatasetError
from autoseg.frozendict import FrozenDict

__all__ = ["Case", "Dataset"]


@dataclass(frozen=True)
class Case:
    """One scan: its channel images, and for training cases its label map and optional ROI mask.

    Attributes:
        case_id: Unique identifier (the nnU-Net case name, or the manifest's ``case``).
        channels: One image path per channel, in the dataset's channel order. For MSD-style
            4D images (``channels_in_one_file``) a single path holding every channel.
        label: Label map path (None for unlabelled test cases).
        roi: Optional ROI mask path (binary; DeepMedic's brain mask).
        group: Patient / group id; cases of one group never straddle cross-validation folds.
        channels_in_one_file: True when ``channels[0]`` is a 4D image with channels last.
    """

    case_id: str
    channels: tuple[Path, ...]
    label: Path | None = None
    roi: Path | None = None
    group: str | None = None
    channels_in_one_file: bool = False

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file of the case (channels, then label and ROI when present)."""
        extra = tuple(p for p in (self.label, self.roi) if p is not None)
        return self.channels + extra


@dataclass(frozen=True)
class Dataset:
    """A labelled dataset, loaded from nnU-Net v2 raw, MSD, a CSV manifest or DeepMedic lists.

    Attributes:
        name: Dataset name (dataset.json ``name``, or the folder/CSV stem).
        root: Folder the dataset was loaded from (the CSV's folder for manifests).
        format: ``"nnunet"``, ``"msd"``, ``"manifest"`` or ``"deepmedic"``.
        channel_names: One name per input channel ("CT", "T1", "FLAIR", ...); "CT" selects
            CT normalisation.
        labels: Label name -> integer value, background (0) and the ignore label included
            (every value a label map may hold).
        cases: Training cases (with labels).
        test_cases: Unlabelled (or held-out) cases, e.g. nnU-Net's ``imagesTs``.
        file_ending: Image file ending (".nii.gz", ".nrrd", ...).
        regions: Region name -> label values it unites (BraTS-style regions), in order.
        num_training: ``numTraining`` as declared by dataset.json (None when not declared).
        source: The file the dataset was described by (dataset.json or the CSV).
        regions_class_order: The label each region paints, for region-based training
            (nnU-Net's ``regions_class_order``); None: label-based training, regions are
            evaluated only.
        ignore_label: The value of the ``ignore`` label (unannotated voxels), or None.
        validation_folds: Fixed validation sets given by the dataset itself (DeepMedic's
            validation lists): one tuple of case ids per fold; empty when none.
    """

    name: str
    root: Path
    format: str
    channel_names: tuple[str, ...]
    labels: Mapping[str, int]
    cases: tuple[Case, ...]
    test_cases: tuple[Case, ...] = ()
    file_ending: str = ".nii.gz"
    regions: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    num_training: int | None = None
    source: Path | None = None
    regions_class_order: tuple[int, ...] | None = None
    ignore_label: int | None = None
    validation_folds: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", FrozenDict(dict(self.labels)))
        object.__setattr__(self, "regions", FrozenDict(dict(self.regions)))

    @property
    def num_channels(self) -> int:
        return len(self.channel_names)

    @property
    def label_values(self) -> tuple[int, ...]:
        """Declared label values, sorted (background 0 first)."""
        return tuple(sorted(set(self.labels.values())))

    @property
    def foreground_labels(self) -> tuple[int, ...]:
        """Declared label values other than 0 and the ignore label: the classes."""
        return tuple(v for v in self.label_values if v not in (0, self.ignore_label))

    @property
    def region_based(self) -> bool:
        """True when the dataset asks for region-based training (``regions_class_order``)."""
        return self.regions_class_order is not None

    @property
    def has_roi(self) -> bool:
        """True when every training case has an ROI mask."""
        return bool(self.cases) and all(c.roi is not None for c in self.cases)

    def case(self, case_id: str) -> Case:
        """The training or test case with ``case_id``.

        Raises:
            DatasetError: if no case has that id.
        """
        for case in self.cases + self.test_cases:
            if case.case_id == case_id:
                return case
        raise DatasetError(f"no case named {case_id!r} in dataset {self.name!r}", path=self.root)
