"""Deterministic phantom datasets in nnU-Net v2 raw format, for the demo, tests and benchmarks.

Written layout (see :mod:`autoseg.data.formats.nnunet_raw` for the conventions)::

    dataset.json              channel_names, labels, numTraining, file_ending,
                              groups (when cases_per_patient > 1), phantom_spec
    imagesTr/phantom_000_0000.nii.gz ...    labelsTr/phantom_000.nii.gz ...
    imagesTs/phantom_010_0000.nii.gz ...    labelsTs/phantom_010.nii.gz ...  (held out)
    roisTr/, roisTs/          body masks, when ``with_roi``

The same spec (seed included) gives the same bytes: every case has its own seeded random
generators and NIfTI files are gzipped with mtime 0 and no file name. Case synthesis
(anatomy, contrasts, noise) lives in :mod:`autoseg.data.phantom`. The CLI imports this
module at start-up, so numpy, nibabel and scipy are imported inside the functions.
"""

from __future__ import annotations

import argparse
import difflib
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoseg.errors import ConfigError
from autoseg.log import get_logger, progress
from autoseg.strict import check_keys

if TYPE_CHECKING:
    from autoseg.data.dataset import Dataset
    from autoseg.data.phantom import PhantomCase

__all__ = [
    "SPACING_MODES",
    "PhantomSpec",
    "add_generator_arguments",
    "case_id_of",
    "generate_from_args",
    "generate_phantom_dataset",
    "patient_of",
    "phantom_case",
    "spec_from_args",
]

SPACING_MODES = ("iso", "varied", "aniso")
MAX_NESTED_CLASSES = 4
_NESTED_NAMES = ("lesion", "core", "necrosis", "nucleus")
_RARE_NAME = "satellite"
_CASTS: dict[str, type] = {"int": int, "float": float, "bool": bool, "str": str}
_log = get_logger(__name__)


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
        spacing: "iso" (1 mm), "varied" (Z 0.9-1.6 mm, in-plane 0.8-1.2 mm) or "aniso"
            (Z 3-5 mm, in-plane 0.65-0.85 mm), drawn per case.
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

    def __post_init__(self) -> None:
        for spec_field in fields(self):  # JSON and numpy values -> plain Python types
            cast = _CASTS.get(str(spec_field.type))
            if cast is not None:
                object.__setattr__(self, spec_field.name, cast(getattr(self, spec_field.name)))
        object.__setattr__(self, "channels", tuple(str(c) for c in self.channels))
        object.__setattr__(self, "base_shape", tuple(int(v) for v in self.base_shape))
        self._validate()

    def _validate(self) -> None:
        from autoseg.data.imageio import SUPPORTED_ENDINGS

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
        near = difflib.get_close_matches(self.spacing, SPACING_MODES, n=1)
        _require(
            self.spacing in SPACING_MODES,
            f"spacing must be one of {', '.join(SPACING_MODES)}, got {self.spacing!r}"
            + (f"; did you mean {near[0]!r}?" if near else ""),
        )

    @property
    def labels(self) -> dict[str, int]:
        """Label name -> value: background 0, nested classes 1..n, then the rare class."""
        labels = {"background": 0}
        labels.update({_NESTED_NAMES[i]: i + 1 for i in range(self.nested_classes)})
        if self.rare_class:
            labels[_RARE_NAME] = self.nested_classes + 1
        return labels

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (tuples become lists)."""
        data = asdict(self)
        data["channels"] = list(self.channels)
        data["base_shape"] = list(self.base_shape)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PhantomSpec:
        """Inverse of :meth:`to_dict`.

        Raises:
            ConfigError: on unknown or missing keys (listing the expected keys) or bad values.
        """
        check_keys("phantom spec", data, [f.name for f in fields(cls)])
        return cls(**data)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def generate_phantom_dataset(out: Path, spec: PhantomSpec, *, overwrite: bool = False) -> Dataset:
    """Write a phantom dataset in nnU-Net v2 raw format to ``out``; return it loaded.

    The dataset is built in a temporary sibling folder and renamed onto ``out`` at the end,
    so an interrupted run never leaves a half-written dataset.

    Args:
        out: Destination folder; must be absent or empty unless ``overwrite``.
        spec: What to generate.
        overwrite: Replace an existing dataset folder (one holding a dataset.json).

    Raises:
        ConfigError: if ``out`` is a file, or a non-empty folder and not replaceable.
    """
    from autoseg.data.formats.nnunet_raw import load_nnunet_raw

    out = Path(out)
    _check_destination(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{out.name}-", dir=out.parent))
    try:
        _write_dataset(tmp, spec)
        os.chmod(tmp, 0o755)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    _log.debug("wrote %d phantom cases to %s", spec.num_train_cases + spec.num_test_cases, out)
    return load_nnunet_raw(out)


def _check_destination(out: Path, overwrite: bool) -> None:
    if out.is_file():
        raise ConfigError("output path is a file; expected a folder", path=out)
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        raise ConfigError("output folder is not empty; pass --overwrite to replace it", path=out)
    if not (out / "dataset.json").is_file():
        raise ConfigError(
            "refusing to replace a non-empty folder that holds no dataset.json", path=out
        )


def case_id_of(index: int) -> str:
    """The id of case ``index`` (training cases first, then test cases)."""
    return f"phantom_{index:03d}"


def patient_of(spec: PhantomSpec, index: int) -> int:
    """The patient index of case ``index``; test cases never share a training patient."""
    if index < spec.num_train_cases:
        return index // spec.cases_per_patient
    train_patients = -(-spec.num_train_cases // spec.cases_per_patient)
    return train_patients + (index - spec.num_train_cases) // spec.cases_per_patient


def phantom_case(spec: PhantomSpec, index: int) -> PhantomCase:
    """Synthesize case ``index`` of the dataset ``spec`` describes (no file is written).

    Each case draws from its own generators, seeded by (seed, stream, index or patient),
    so a case does not depend on the others or on the order they are made in.
    """
    import numpy as np

    from autoseg.data.phantom import synthesize_case

    draw = np.random.default_rng([spec.seed, 2, index]).random()
    always = index == 0 or index >= spec.num_train_cases  # first training case, test cases
    return synthesize_case(
        spec,
        np.random.default_rng([spec.seed, 0, patient_of(spec, index)]),
        np.random.default_rng([spec.seed, 1, index]),
        with_rare=spec.rare_class and (always or draw < spec.rare_class_presence),
    )


def _write_dataset(root: Path, spec: PhantomSpec) -> None:
    from autoseg.atomic import atomic_write_json
    from autoseg.data.imageio import write_image

    total = spec.num_train_cases + spec.num_test_cases
    ending = spec.file_ending
    for index in progress(range(total), desc="phantom", total=total):
        case, case_id = phantom_case(spec, index), case_id_of(index)
        split = "Tr" if index < spec.num_train_cases else "Ts"
        for channel, array in enumerate(case.channels):
            path = root / f"images{split}" / f"{case_id}_{channel:04d}{ending}"
            write_image(path, array, case.geometry)
        write_image(root / f"labels{split}" / f"{case_id}{ending}", case.label, case.geometry)
        if spec.with_roi:
            write_image(root / f"rois{split}" / f"{case_id}{ending}", case.roi, case.geometry)
    atomic_write_json(root / "dataset.json", _description(spec))


def _description(spec: PhantomSpec) -> dict[str, Any]:
    """The dataset.json of a phantom dataset (nnU-Net v2 keys, groups, the spec)."""
    description: dict[str, Any] = {
        "name": spec.name,
        "description": "Synthetic phantom dataset generated by autoseg demo-data",
        "reference": "autoseg.data.synthetic",
        "licence": "CC0",
        "channel_names": {str(i): name for i, name in enumerate(spec.channels)},
        "labels": spec.labels,
        "numTraining": spec.num_train_cases,
        "file_ending": spec.file_ending,
    }
    if spec.cases_per_patient > 1:
        total = spec.num_train_cases + spec.num_test_cases
        description["groups"] = {
            case_id_of(i): f"patient_{patient_of(spec, i):03d}" for i in range(total)
        }
    description["phantom_spec"] = spec.to_dict()
    return description


def add_generator_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``autoseg demo-data`` options (defaults from :class:`PhantomSpec`)."""
    d: dict[str, Any] = {f.name: f.default for f in fields(PhantomSpec)}  # no heavy imports
    add = parser.add_argument
    add("--cases", type=int, default=d["num_train_cases"], metavar="N", help="training cases")
    add(
        "--test-cases",
        type=int,
        default=d["num_test_cases"],
        metavar="N",
        help="held-out cases written to imagesTs/labelsTs",
    )
    add(
        "--channels",
        nargs="+",
        default=list(d["channels"]),
        metavar="NAME",
        help="modality names, e.g. T1 FLAIR (MRI-like) or CT (Hounsfield units)",
    )
    add(
        "--nested-classes",
        type=int,
        default=d["nested_classes"],
        metavar="K",
        help=f"nested lesion sub-regions, classes 1..K (1..{MAX_NESTED_CLASSES})",
    )
    add("--no-rare-class", action="store_true", help="omit the small rare class K+1")
    add(
        "--spacing",
        choices=SPACING_MODES,
        default=d["spacing"],
        help="voxel spacing drawn per case: iso 1 mm, varied, or aniso (3-5 mm slices)",
    )
    add(
        "--shape",
        type=int,
        nargs=3,
        default=list(d["base_shape"]),
        metavar=("Z", "Y", "X"),
        help="typical image shape in voxels",
    )
    add("--roi", action="store_true", help="write body ROI masks to roisTr/roisTs")
    add(
        "--cases-per-patient",
        type=int,
        default=d["cases_per_patient"],
        metavar="N",
        help="scans per patient (writes patient groups into dataset.json when > 1)",
    )
    add("--noise", type=float, default=d["noise"], help="noise level (fraction of tissue range)")
    add("--bias-field", type=float, default=d["bias_field"], help="MRI bias field strength")
    add(
        "--file-ending",
        default=d["file_ending"],
        metavar="ENDING",
        help="image file ending: .nii.gz (default), .nii, .nrrd, .nhdr, .mha or .mhd",
    )
    add("--seed", type=int, default=d["seed"], help="seed (same seed, same bytes)")
    add("--overwrite", action="store_true", help="replace an existing dataset in OUT")


def spec_from_args(args: argparse.Namespace) -> PhantomSpec:
    """The :class:`PhantomSpec` described by parsed ``demo-data`` options."""
    return PhantomSpec(
        num_train_cases=args.cases,
        num_test_cases=args.test_cases,
        channels=tuple(args.channels),
        nested_classes=args.nested_classes,
        rare_class=not args.no_rare_class,
        spacing=args.spacing,
        base_shape=tuple(args.shape),
        with_roi=args.roi,
        cases_per_patient=args.cases_per_patient,
        noise=args.noise,
        bias_field=args.bias_field,
        file_ending=args.file_ending,
        seed=args.seed,
    )


def generate_from_args(args: argparse.Namespace) -> int:
    """``autoseg demo-data``: generate the dataset, print one line saying what was written."""
    spec = spec_from_args(args)
    dataset = generate_phantom_dataset(args.out, spec, overwrite=args.overwrite)
    labels = ", ".join(f"{v} {n}" for n, v in dataset.labels.items())
    print(
        f"wrote {len(dataset.cases)} training and {len(dataset.test_cases)} test cases "
        f"(channels {', '.join(dataset.channel_names)}; labels {labels}) to {args.out}"
    )
    return 0
