"""Readers of the supported dataset formats: nnU-Net v2 raw, MSD, CSV manifests and DeepMedic
list files.

:func:`load_dataset` detects the format of a path and loads it. :data:`LOADERS` hold the
strict loaders (raise :class:`~autoseg.errors.DatasetError` on the first structural
problem); :data:`READERS` the lenient ones used by ``autoseg verify``, which return every
problem found. See docs/dataset_formats.md.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from autoseg.data.checks import Problem
from autoseg.data.dataset import Dataset
from autoseg.data.formats._common import LoadResult
from autoseg.data.formats.deepmedic_lists import load_deepmedic_lists, read_deepmedic_lists
from autoseg.data.formats.detect import FORMATS, detect_format
from autoseg.data.formats.manifest import load_manifest, read_manifest
from autoseg.data.formats.msd import load_msd, read_msd
from autoseg.data.formats.nnunet_raw import load_nnunet_raw, read_nnunet_raw
from autoseg.errors import DatasetError

__all__ = [
    "FORMATS",
    "LOADERS",
    "READERS",
    "LoadResult",
    "detect_format",
    "load_dataset",
    "load_deepmedic_lists",
    "load_manifest",
    "load_msd",
    "load_nnunet_raw",
    "read_dataset",
    "read_deepmedic_lists",
    "read_manifest",
    "read_msd",
    "read_nnunet_raw",
]

LOADERS: dict[str, Callable[[Path], Dataset]] = {
    "nnunet": load_nnunet_raw,
    "msd": load_msd,
    "manifest": load_manifest,
    "deepmedic": load_deepmedic_lists,
}
READERS: dict[str, Callable[[Path], LoadResult]] = {
    "nnunet": read_nnunet_raw,
    "msd": read_msd,
    "manifest": read_manifest,
    "deepmedic": read_deepmedic_lists,
}


def load_dataset(path: Path | str) -> Dataset:
    """Load a dataset in any supported format (detected from the path).

    Loading checks structure only (dataset.json, the listed files' names); image contents
    are checked by :func:`autoseg.data.verify.verify_dataset`.

    Raises:
        DatasetError: if the dataset description is missing or malformed.
    """
    path = Path(path)
    return LOADERS[detect_format(path)](path)


def read_dataset(path: Path) -> LoadResult:
    """Detect the format of ``path`` and read it leniently (never raises for bad data).

    Returns:
        The dataset (None when it cannot be loaded at all) and every structural problem.
    """
    try:
        fmt = detect_format(Path(path))
    except DatasetError as err:
        return LoadResult(None, (Problem.from_error(err, "dataset"),))
    return READERS[fmt](Path(path))
