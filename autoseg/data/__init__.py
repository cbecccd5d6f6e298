"""Datasets: formats (nnU-Net v2 raw, MSD, CSV manifest), checked case loading, ``verify``
and the synthetic phantom generator; image I/O with geometry.

Names are imported lazily on first use, so ``import autoseg.data.<module>`` (as the CLI
does at start-up) does not pull in nibabel, SimpleITK and scipy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autoseg.data.case_io import CaseArrays, load_case, reference_image_path
    from autoseg.data.checks import Problem
    from autoseg.data.dataset import Case, Dataset
    from autoseg.data.formats import detect_format, load_dataset
    from autoseg.data.geometry import Geometry
    from autoseg.data.imageio import read_image, write_image
    from autoseg.data.phantom_spec import PhantomSpec
    from autoseg.data.synthetic import generate_phantom_dataset
    from autoseg.data.verify import VerifyReport, verify_cases, verify_dataset

__all__ = [
    "Case",
    "CaseArrays",
    "Dataset",
    "Geometry",
    "PhantomSpec",
    "Problem",
    "VerifyReport",
    "detect_format",
    "generate_phantom_dataset",
    "load_case",
    "load_dataset",
    "read_image",
    "reference_image_path",
    "verify_cases",
    "verify_dataset",
    "write_image",
]

_HOMES = {
    "autoseg.data.case_io": ("CaseArrays", "load_case", "reference_image_path"),
    "autoseg.data.checks": ("Problem",),
    "autoseg.data.dataset": ("Case", "Dataset"),
    "autoseg.data.formats": ("detect_format", "load_dataset"),
    "autoseg.data.geometry": ("Geometry",),
    "autoseg.data.imageio": ("read_image", "write_image"),
    "autoseg.data.phantom_spec": ("PhantomSpec",),
    "autoseg.data.synthetic": ("generate_phantom_dataset",),
    "autoseg.data.verify": ("VerifyReport", "verify_cases", "verify_dataset"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'autoseg.data' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
