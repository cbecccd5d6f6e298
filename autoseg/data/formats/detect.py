"""Tell which supported format a dataset path is in, from the path and dataset.json's keys."""

from __future__ import annotations

from pathlib import Path

from autoseg.data.formats._common import dataset_root, read_json
from autoseg.data.formats.deepmedic_lists import MARKER_KEY
from autoseg.errors import DatasetError

__all__ = ["FORMATS", "detect_format"]

FORMATS = ("nnunet", "msd", "manifest", "deepmedic")
_NNUNET_KEYS = ("channel_names", "file_ending")
_MSD_KEYS = ("modality", "training")


def detect_format(path: Path | str) -> str:
    """``"manifest"`` for a .csv file; ``"nnunet"`` or ``"msd"`` for a folder with dataset.json;
    ``"deepmedic"`` for a DeepMedic list descriptor.

    A folder's format comes from its dataset.json: ``channel_names``/``file_ending`` mean
    nnU-Net v2, ``modality``/``training`` mean the Medical Segmentation Decathlon (and
    nnU-Net v1). The path may also be the dataset.json file itself. Any other ``.json``
    file holding ``channelsTraining`` is a DeepMedic list descriptor.

    Raises:
        DatasetError: if the path is missing, is neither, or dataset.json is unreadable.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError("dataset not found", path=path)
    if path.is_file() and path.suffix.lower() == ".csv":
        return "manifest"
    if path.is_file() and path.suffix.lower() == ".json" and path.name != "dataset.json":
        data, problem = read_json(path)
        if data is None:
            raise problem.to_error() if problem else DatasetError("unreadable", path=path)
        if MARKER_KEY in data:
            return "deepmedic"
        raise DatasetError(
            f"a dataset description .json other than dataset.json must be a DeepMedic list "
            f"descriptor (with '{MARKER_KEY}')",
            path=path,
        )
    root = dataset_root(path)
    if not root.is_dir():
        raise DatasetError(
            "expected a dataset folder (with dataset.json), its dataset.json, a CSV manifest or "
            "a DeepMedic list descriptor (.json)",
            path=path,
        )
    data, problem = read_json(root / "dataset.json")
    if data is None:
        if problem is not None and problem.message == "file not found":
            raise DatasetError(
                "no dataset.json: expected an nnU-Net v2 raw folder (dataset.json, imagesTr/, "
                "labelsTr/), an MSD task folder, or a CSV manifest",
                path=root,
            )
        raise problem.to_error() if problem else DatasetError("unreadable", path=root)
    if any(key in data for key in _NNUNET_KEYS):
        return "nnunet"
    if any(key in data for key in _MSD_KEYS):
        return "msd"
    raise DatasetError(
        "cannot tell the format: dataset.json has neither 'channel_names'/'file_ending' "
        "(nnU-Net v2) nor 'modality'/'training' (Medical Segmentation Decathlon)",
        path=root / "dataset.json",
    )
