"""DeepMedic list files, read directly: one JSON descriptor names them, with DeepMedic's names.

DeepMedic describes data by list files, one path per line (one line per case): one list per
channel, one for the label maps, one for the ROI masks, one for the names of the
predictions; for training, validation and testing. The descriptor (any ``*.json`` but
dataset.json, told by its ``channelsTraining`` key) holds the list files' paths under the
names of DeepMedic's ``trainConfig.cfg`` and ``testConfig.cfg`` (copy them over)::

    {
      "channelsTraining": ["train/trainChannels_flair.cfg", "train/trainChannels_t1c.cfg"],
      "gtLabelsTraining": "train/trainGtLabels.cfg",
      "roiMasksTraining": "train/trainRoiMasks.cfg",
      "channelsValidation": ["train/validation/validationChannels_flair.cfg", "..."],
      "gtLabelsValidation": "train/validation/validationGtLabels.cfg",
      "roiMasksValidation": "train/validation/validationRoiMasks.cfg",
      "namesForPredictionsPerCaseVal": "train/validation/validationNamesOfPredictions.cfg",
      "channelsTest": ["test/testChannels_flair.cfg", "test/testChannels_t1c.cfg"],
      "roiMasksTest": "test/testRoiMasks.cfg",
      "namesForPredictionsPerCaseTest": "test/testNamesOfPredictions.cfg"
    }

``channelsTest``, ``gtLabelsTest``, ``roiMasksTest`` and ``namesForPredictionsPerCaseTest``
are testConfig.cfg's ``channels``, ``gtLabels``, ``roiMasks`` and
``namesForPredictionsPerCase``. Optional autoseg keys: ``name``, ``channel_names`` (default:
from the training list files' names, ``trainChannels_flair.cfg`` -> ``flair``), ``labels``
and ``regions_class_order`` (nnU-Net style; default: the values found in the label maps,
named ``label_<v>``).

Paths in the descriptor are relative to its folder; paths in a list file relative to the
list file's folder, as DeepMedic reads them. Blank lines and ``#`` comments are skipped.
Training and validation cases are all labelled training cases; the validation cases form
one fixed fold (``Dataset.validation_folds``). Case ids: the names of predictions (their
image ending removed), else the label file's name (its folder's name when file names
repeat); test cases without names are named after their first channel file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoseg.data.checks import Problem
from autoseg.data.dataset import Case, Dataset
from autoseg.data.file_endings import SUPPORTED_ENDINGS
from autoseg.data.formats._common import (
    LoadResult,
    dataset_problems,
    first_ending,
    infer_labels,
    parse_label_map,
    read_json,
    strict,
)
from autoseg.data.labels import LabelScheme

__all__ = ["DESCRIPTOR_KEYS", "MARKER_KEY", "load_deepmedic_lists", "read_deepmedic_lists"]

MARKER_KEY = "channelsTraining"
"""The key that tells a DeepMedic list descriptor."""
_SPLITS = {
    "Training": ("channelsTraining", "gtLabelsTraining", "roiMasksTraining", None),
    "Validation": (
        "channelsValidation",
        "gtLabelsValidation",
        "roiMasksValidation",
        "namesForPredictionsPerCaseVal",
    ),
    "Test": ("channelsTest", "gtLabelsTest", "roiMasksTest", "namesForPredictionsPerCaseTest"),
}
DESCRIPTOR_KEYS = (
    *(key for keys in _SPLITS.values() for key in keys if key is not None),
    "name",
    "channel_names",
    "labels",
    "regions_class_order",
)


def load_deepmedic_lists(path: Path) -> Dataset:
    """Load a dataset described by DeepMedic list files (see the module docstring).

    Raises:
        DatasetError: for the first structural problem (see :func:`read_deepmedic_lists`).
    """
    return strict(read_deepmedic_lists(path))


@dataclass
class _Reader:
    source: Path
    problems: list[Problem]

    def path(self, raw: object, key: str) -> Path | None:
        if not isinstance(raw, str) or not raw:
            self.fail(f"{key!r} must be the path of a list file, got {raw!r:.60}")
            return None
        path = Path(raw).expanduser()
        return path if path.is_absolute() else self.source.parent / path

    def lines(self, listing: Path) -> list[Path]:
        """The paths listed in ``listing``, relative ones resolved against its folder."""
        try:
            text = listing.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            reason = "file not found" if not listing.exists() else f"cannot read file: {err}"
            self.problems.append(Problem(None, listing, "deepmedic_list", reason))
            return []
        entries = [line.strip() for line in text.splitlines()]
        paths = [Path(e).expanduser() for e in entries if e and not e.startswith("#")]
        return [p if p.is_absolute() else listing.parent / p for p in paths]

    def fail(self, message: str) -> None:
        self.problems.append(Problem(None, self.source, "deepmedic_list", message))


def read_deepmedic_lists(path: Path) -> LoadResult:
    """Read a DeepMedic list descriptor leniently, collecting every structural problem."""
    source = Path(path)
    data, problem = read_json(source)
    if data is None:
        return LoadResult(None, (problem,) if problem else ())
    reader = _Reader(source, [])
    unknown = sorted(set(data) - set(DESCRIPTOR_KEYS))
    if unknown:
        reader.fail(f"unknown key(s) {unknown}; expected keys: {', '.join(DESCRIPTOR_KEYS)}")
    for key in ("channelsTraining", "gtLabelsTraining"):
        if key not in data:
            reader.fail(f"missing key {key!r} (DeepMedic's trainConfig.cfg has it)")
    splits = {name: _split(reader, data, name) for name in _SPLITS}
    channels = len(data.get("channelsTraining") or [])
    for name in ("Validation", "Test"):
        given = data.get(_SPLITS[name][0])
        if given is not None and isinstance(given, list) and len(given) != channels:
            reader.fail(
                f"{_SPLITS[name][0]!r} lists {len(given)} channel list(s) but "
                f"'channelsTraining' lists {channels}"
            )
    train, val, test = (splits[n] for n in ("Training", "Validation", "Test"))
    taken = {c.case_id for c in train}
    for case in val:
        if case.case_id in taken:
            reader.fail(f"validation case {case.case_id!r} has the id of a training case")
    if reader.problems and not train:
        return LoadResult(None, tuple(reader.problems))
    scheme = _labels(reader, data, train + val)
    dataset = Dataset(
        name=str(data.get("name", source.stem)),
        root=source.parent,
        format="deepmedic",
        channel_names=_channel_names(reader, data, channels),
        labels=scheme.labels,
        cases=tuple(train + val),
        test_cases=tuple(test),
        file_ending=first_ending(train + val + test),
        regions=scheme.regions,
        source=source,
        regions_class_order=scheme.regions_class_order,
        ignore_label=scheme.ignore_label,
        validation_folds=(tuple(c.case_id for c in val),) if val else (),
    )
    return LoadResult(dataset, tuple(reader.problems + dataset_problems(dataset)))


def _split(reader: _Reader, data: dict[str, Any], split: str) -> list[Case]:
    """The cases of one split (Training, Validation or Test) from its list files."""
    channel_key, label_key, roi_key, names_key = _SPLITS[split]
    raw = data.get(channel_key)
    if raw is None:
        if split != "Test" and any(k in data for k in (label_key, roi_key, names_key) if k):
            reader.fail(f"{channel_key!r} is missing but other {split.lower()} lists are given")
        return []
    if not isinstance(raw, list) or not raw:
        reader.fail(f"{channel_key!r} must list one list file per channel, got {raw!r:.60}")
        return []
    listings = [reader.path(r, channel_key) for r in raw]
    columns = {f"{channel_key}[{i}]": reader.lines(p) for i, p in enumerate(listings) if p}
    for key in (label_key, roi_key, names_key):
        if key is not None and key in data:
            listing = reader.path(data[key], key)
            columns[key] = reader.lines(listing) if listing else []
    if split == "Validation" and label_key not in data:  # training's: a missing key
        reader.fail(f"{label_key!r} is missing: validation cases need label maps")
    counts = {key: len(paths) for key, paths in columns.items()}
    if len(set(counts.values())) > 1:
        reader.fail(f"the {split.lower()} lists hold different numbers of cases: {counts}")
        return []
    channel_columns = [v for k, v in columns.items() if k.startswith(channel_key)]
    if len(channel_columns) != len(raw) or not channel_columns[0]:
        return []
    labels = columns.get(label_key)
    rois = columns.get(roi_key) if roi_key else None
    names = columns.get(names_key) if names_key else None
    ids = _case_ids(names, labels if labels is not None else channel_columns[0])
    return [
        Case(
            case_id,
            tuple(column[i] for column in channel_columns),
            label=labels[i] if labels is not None else None,
            roi=rois[i] if rois is not None else None,
        )
        for i, case_id in enumerate(ids)
    ]


def _strip_ending(name: str) -> str:
    for ending in SUPPORTED_ENDINGS:
        if name.lower().endswith(ending):
            return name[: -len(ending)]
    return name


def _case_ids(names: Sequence[Path] | None, files: Sequence[Path]) -> list[str]:
    """Case ids: the names of predictions, else the files' names, else their folders'."""
    if names is not None:
        return [_strip_ending(p.name) for p in names]
    ids = [_strip_ending(p.name) for p in files]
    if len(set(ids)) != len(ids):
        ids = [p.parent.name for p in files]
    if len(set(ids)) != len(ids):
        ids = [f"case_{i:03d}" for i in range(len(files))]
    return ids


def _channel_names(reader: _Reader, data: dict[str, Any], channels: int) -> tuple[str, ...]:
    given = data.get("channel_names")
    if given is not None:
        if (
            isinstance(given, list)
            and len(given) == channels
            and all(isinstance(n, str) and n for n in given)
        ):
            return tuple(given)
        reader.fail(f"'channel_names' must name each of the {channels} channels, got {given!r}")
    stems = [Path(str(r)).stem for r in data.get("channelsTraining") or []]
    names = [stem.rsplit("_", 1)[-1] for stem in stems]
    if len(set(names)) != len(names) or not all(names):
        names = [f"channel_{i}" for i in range(channels)]
    return tuple(names)


def _labels(reader: _Reader, data: dict[str, Any], cases: list[Case]) -> LabelScheme:
    if "labels" not in data:
        return LabelScheme(infer_labels(cases))
    scheme, problems = parse_label_map(
        data["labels"], source=reader.source, regions_class_order=data.get("regions_class_order")
    )
    reader.problems.extend(problems)
    return scheme or LabelScheme({"background": 0})
