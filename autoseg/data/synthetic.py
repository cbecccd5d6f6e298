"""Deterministic phantom datasets in nnU-Net v2 raw format, for the demo, tests and benchmarks.

Written layout (see :mod:`autoseg.data.formats.nnunet_raw` for the conventions)::

    dataset.json              channel_names, labels, numTraining, file_ending,
                              regions_class_order (nested regions), groups (when
                              cases_per_patient > 1), phantom_spec
    imagesTr/phantom_000_0000.nii.gz ...    labelsTr/phantom_000.nii.gz ...
    imagesTs/phantom_010_0000.nii.gz ...    labelsTs/phantom_010.nii.gz ...  (held out)
    roisTr/, roisTs/          body masks, when ``with_roi``

The same spec (seed included) gives the same bytes: every case has its own seeded random
generators and NIfTI files are gzipped with mtime 0 and no file name. What to generate is a
:class:`~autoseg.data.phantom_spec.PhantomSpec`; case synthesis (anatomy, contrasts, noise)
lives in :mod:`autoseg.data.phantom`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from autoseg.atomic import atomic_write_json, make_folder, temporary_folder
from autoseg.data.dataset import Dataset
from autoseg.data.formats.nnunet_raw import load_nnunet_raw
from autoseg.data.imageio import write_image
from autoseg.data.phantom import PhantomCase, synthesize_case
from autoseg.data.phantom_spec import SPACING_MODES, PhantomSpec
from autoseg.errors import ConfigError
from autoseg.leftovers import clean_temporaries
from autoseg.log import get_logger, progress

__all__ = [
    "SPACING_MODES",
    "PhantomSpec",
    "case_id_of",
    "generate_phantom_dataset",
    "patient_of",
    "phantom_case",
]

_log = get_logger(__name__)


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
    out = Path(out)
    _check_destination(out, overwrite)
    make_folder(out.parent)
    clean_temporaries(out.parent)
    with temporary_folder(out) as tmp:
        _write_dataset(tmp, spec)
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
    draw = np.random.default_rng([spec.seed, 2, index]).random()
    always = index == 0 or index >= spec.num_train_cases  # first training case, test cases
    return synthesize_case(
        spec,
        np.random.default_rng([spec.seed, 0, patient_of(spec, index)]),
        np.random.default_rng([spec.seed, 1, index]),
        with_rare=spec.rare_class and (always or draw < spec.rare_class_presence),
    )


def _write_dataset(root: Path, spec: PhantomSpec) -> None:
    total = spec.num_train_cases + spec.num_test_cases
    ending = spec.file_ending
    for index in progress(range(total), desc="phantom", total=total):
        case, case_id = phantom_case(spec, index), case_id_of(index)
        split = "Tr" if index < spec.num_train_cases else "Ts"
        for channel, array in enumerate(case.channels):
            path = root / f"images{split}" / f"{case_id}_{channel:04d}{ending}"
            write_image(path, array, case.geometry)
        label = case.label if split == "Ts" else _sparse(case.label, spec)
        write_image(root / f"labels{split}" / f"{case_id}{ending}", label, case.geometry)
        if spec.with_roi:
            write_image(root / f"rois{split}" / f"{case_id}{ending}", case.roi, case.geometry)
    atomic_write_json(root / "dataset.json", _description(spec))


def _sparse(label: np.ndarray, spec: PhantomSpec) -> np.ndarray:
    """``label`` annotated on every ``spec.sparse_slices``-th axial slice only (the first
    included), the ignore label elsewhere; unchanged for dense labels."""
    if spec.ignore_label is None:
        return label
    sparse = np.full_like(label, spec.ignore_label)
    sparse[:: spec.sparse_slices] = label[:: spec.sparse_slices]
    return sparse


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
    if spec.regions_class_order is not None:
        description["regions_class_order"] = spec.regions_class_order
    if spec.cases_per_patient > 1:
        total = spec.num_train_cases + spec.num_test_cases
        description["groups"] = {
            case_id_of(i): f"patient_{patient_of(spec, i):03d}" for i in range(total)
        }
    description["phantom_spec"] = spec.to_dict()
    return description
