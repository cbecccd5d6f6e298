"""nnU-Net v2 raw dataset folders, read unchanged.

Layout::

    dataset.json          channel_names, labels, numTraining, file_ending (+ optional keys)
    imagesTr/{case}_{XXXX}{ending}   one file per channel XXXX = 0000, 0001, ...
    labelsTr/{case}{ending}
    imagesTs/{case}_{XXXX}{ending}   optional unlabelled (or held-out) cases

autoseg conventions on top (nnU-Net ignores unknown keys and folders, so such datasets stay
nnU-Net compatible):

- ``roisTr/{case}{ending}`` and ``roisTs/{case}{ending}``: optional ROI masks (> 0 inside; e.g.
  DeepMedic's brain mask). When the folder exists, every case of that split needs a mask.
- ``labelsTs/{case}{ending}``: optional labels of held-out test cases, for evaluation.
- ``"groups": {"case_id": "patient_id"}`` in dataset.json: cases of one patient never
  straddle cross-validation folds; cases not listed form their own group.
- A label whose value is a list of integers is a region (``Dataset.regions``); with
  ``regions_class_order`` the networks are trained on the regions, as in nnU-Net's
  region-based training. A label named ``ignore`` marks unannotated voxels (see
  :mod:`autoseg.data.labels`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from autoseg.data.checks import Problem, check_num_training
from autoseg.data.dataset import Case, Dataset
from autoseg.data.formats._common import (
    LoadResult,
    bad_case_id,
    dataset_problems,
    dataset_root,
    list_files,
    missing_keys,
    parse_label_map,
    read_json,
    strict,
)
from autoseg.data.imageio import SUPPORTED_ENDINGS

__all__ = ["REQUIRED_KEYS", "load_nnunet_raw", "read_nnunet_raw"]

REQUIRED_KEYS = ("channel_names", "labels", "numTraining", "file_ending")


def load_nnunet_raw(path: Path) -> Dataset:
    """Load an nnU-Net v2 raw dataset folder (or its dataset.json).

    Raises:
        DatasetError: for the first structural problem (see :func:`read_nnunet_raw`).
    """
    return strict(read_nnunet_raw(path))


def read_nnunet_raw(path: Path) -> LoadResult:
    """Read an nnU-Net v2 raw dataset leniently, collecting every structural problem.

    Checks dataset.json (keys and their types), file names in imagesTr/imagesTs, channel
    files per case, label/ROI files, ``numTraining`` against the cases found, groups, and
    the dataset-level checks shared by every format. Image contents are not read.
    """
    root = dataset_root(Path(path))
    source = root / "dataset.json"
    data, problem = read_json(source)
    if data is None:
        return LoadResult(None, (problem,) if problem else ())
    problems = missing_keys(data, REQUIRED_KEYS, source=source)
    channel_names = _channel_names(data.get("channel_names"), source, problems)
    scheme, label_problems = parse_label_map(
        data.get("labels"), source=source, regions_class_order=data.get("regions_class_order")
    )
    problems += label_problems if "labels" in data else []
    ending = _file_ending(data.get("file_ending"), source, problems)
    if not channel_names or scheme is None or ending is None:
        return LoadResult(None, tuple(problems))
    num_training = data.get("numTraining")
    if "numTraining" in data and not _is_count(num_training):
        message = f"'numTraining' must be a non-negative integer, got {num_training!r:.40}"
        problems.append(Problem(None, source, "dataset_json", message))
        num_training = None
    groups = _groups(data.get("groups", {}), source, problems)
    layout = _Layout(root, ending, len(channel_names))
    cases = layout.cases("imagesTr", "labelsTr", "roisTr", groups, problems, labels_required=True)
    test_cases = layout.cases("imagesTs", "labelsTs", "roisTs", groups, problems)
    unknown = sorted(set(groups) - {c.case_id for c in cases + test_cases})
    for case_id in unknown:
        problems.append(
            Problem(case_id, source, "dataset_json", "'groups' names a case that has no images")
        )
    if num_training is not None:
        problems += check_num_training(num_training, len(cases), source=source)
    dataset = Dataset(
        name=str(data.get("name", root.name)),
        root=root,
        format="nnunet",
        channel_names=channel_names,
        labels=scheme.labels,
        cases=tuple(cases),
        test_cases=tuple(test_cases),
        file_ending=ending,
        regions=scheme.regions,
        num_training=num_training,
        source=source,
        regions_class_order=scheme.regions_class_order,
        ignore_label=scheme.ignore_label,
    )
    return LoadResult(dataset, tuple(problems + dataset_problems(dataset)))


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _channel_names(raw: object, source: Path, problems: list[Problem]) -> tuple[str, ...]:
    """``{"0": "CT", "1": "T2"}`` -> ("CT", "T2"); keys must be 0..C-1."""
    if raw is None:
        return ()
    expected = [str(i) for i in range(len(raw))] if isinstance(raw, dict) else []
    if not isinstance(raw, dict) or not raw or sorted(raw, key=_int_or_inf) != expected:
        message = (
            "'channel_names' must map consecutive channel indices to names, e.g. "
            f'{{"0": "T1", "1": "FLAIR"}}; got {raw!r:.80}'
        )
        problems.append(Problem(None, source, "dataset_json", message))
        return ()
    return tuple(str(raw[key]) for key in expected)


def _int_or_inf(key: str) -> float:
    return int(key) if key.isdigit() else float("inf")


def _file_ending(raw: object, source: Path, problems: list[Problem]) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or raw.lower() not in SUPPORTED_ENDINGS:
        message = f"'file_ending' must be one of {', '.join(SUPPORTED_ENDINGS)}, got {raw!r:.40}"
        problems.append(Problem(None, source, "dataset_json", message))
        return None
    return raw


def _groups(raw: object, source: Path, problems: list[Problem]) -> dict[str, str]:
    """``{"case_id": "patient_id"}`` with string (or integer) patient ids."""
    if isinstance(raw, dict) and all(
        isinstance(v, (str, int)) and not isinstance(v, bool) for v in raw.values()
    ):
        return {str(k): str(v) for k, v in raw.items()}
    message = f"'groups' must map case ids to patient ids, got {raw!r:.80}"
    problems.append(Problem(None, source, "dataset_json", message))
    return {}


class _Layout:
    """Finds the cases of one split (imagesTr or imagesTs) of an nnU-Net folder."""

    def __init__(self, root: Path, ending: str, num_channels: int) -> None:
        self.root = root
        self.ending = ending
        self.num_channels = num_channels
        self.pattern = re.compile(
            rf"^(?P<case>.+)_(?P<channel>\d{{4}}){re.escape(ending)}$", re.DOTALL
        )

    def cases(
        self,
        images: str,
        labels: str,
        rois: str,
        groups: dict[str, Any],
        problems: list[Problem],
        *,
        labels_required: bool = False,
    ) -> list[Case]:
        """Cases of the split: channels from ``images``, labels and ROIs from their folders."""
        case_ids = self._case_ids(self.root / images, problems)
        labels_dir, rois_dir = self.root / labels, self.root / rois
        cases = []
        for case_id in case_ids:
            label_path = labels_dir / f"{case_id}{self.ending}"
            label = label_path if labels_required or label_path.is_file() else None
            roi = rois_dir / f"{case_id}{self.ending}" if rois_dir.is_dir() else None
            channels = tuple(
                self.root / images / f"{case_id}_{i:04d}{self.ending}"
                for i in range(self.num_channels)
            )
            cases.append(Case(case_id, channels, label, roi, groups.get(case_id)))
        for orphan in list_files(labels_dir, self.ending):
            case_id = orphan.name[: -len(self.ending)]
            if case_id not in case_ids and not bad_case_id(case_id, orphan, problems):
                message = f"label map has no images in {images}/"
                problems.append(Problem(case_id, orphan, "orphan_label", message))
        return cases

    def _case_ids(self, folder: Path, problems: list[Problem]) -> list[str]:
        case_ids: dict[str, None] = {}
        for path in list_files(folder, self.ending):
            match = self.pattern.match(path.name)
            if match is None:
                message = (
                    f"file name does not follow {{case}}_{{XXXX}}{self.ending} "
                    "(XXXX = 4-digit channel index)"
                )
                problems.append(Problem(None, path, "file_name", message))
                continue
            if bad_case_id(match["case"], path, problems):
                continue
            channel = int(match["channel"])
            if channel >= self.num_channels:
                message = (
                    f"channel {channel:04d} is not declared in channel_names "
                    f"(0000..{self.num_channels - 1:04d})"
                )
                problems.append(Problem(match["case"], path, "file_name", message))
            case_ids[match["case"]] = None
        return list(case_ids)
