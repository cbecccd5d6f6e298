"""Which files are images: the endings autoseg reads and writes (no image library here).

NIfTI (``.nii.gz``, ``.nii``) is read with nibabel, the ITK formats with SimpleITK (see
:mod:`autoseg.data.imageio`); this module only names them, so option parsing and dataset
descriptions can check an ending without importing either library.
"""

from __future__ import annotations

from pathlib import Path

from autoseg.errors import DatasetError

__all__ = ["NIFTI_ENDINGS", "SITK_ENDINGS", "SUPPORTED_ENDINGS", "file_ending"]

NIFTI_ENDINGS = (".nii.gz", ".nii")
SITK_ENDINGS = (".nrrd", ".nhdr", ".mha", ".mhd")
SUPPORTED_ENDINGS = NIFTI_ENDINGS + SITK_ENDINGS


def file_ending(path: Path | str) -> str:
    """The supported ending of ``path`` (``.nii.gz``, ``.nrrd``, ...).

    Raises:
        DatasetError: if the ending is not one autoseg reads.
    """
    name = Path(path).name.lower()
    for ending in SUPPORTED_ENDINGS:
        if name.endswith(ending):
            return ending
    raise DatasetError(
        f"unsupported image format; expected one of {', '.join(SUPPORTED_ENDINGS)}", path=path
    )
