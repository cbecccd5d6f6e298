"""Medical Segmentation Decathlon task folders (also nnU-Net v1 raw folders).

dataset.json holds ``modality`` ({"0": "FLAIR", ...}), ``labels`` ({"0": "background",
"1": "edema"}: value -> name; a label named ``ignore`` is the ignore label), ``training``
([{"image": "./imagesTr/x.nii.gz", "label": "./labelsTr/x.nii.gz"}]), optional ``test``
(paths) and ``numTraining``. A multi-modal
image is one 4D file whose last axis holds the channels (``Case.channels_in_one_file``).
When the listed image is absent but ``{case}_0000{ending}`` files exist (the nnU-Net v1
layout), the per-channel files are used instead. macOS ``._*`` entries are ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autoseg.data.checks import Problem, check_num_training
from autoseg.data.dataset import Case, Dataset
from autoseg.data.formats._common import (
    LoadResult,
    bad_case_id,
    dataset_problems,
    dataset_root,
    missing_keys,
    read_json,
    strict,
)
from autoseg.data.imageio import file_ending
from autoseg.data.labels import parse_label_scheme
from autoseg.errors import DatasetError
from autoseg.log import get_logger

__all__ = ["REQUIRED_KEYS", "load_msd", "read_msd"]

REQUIRED_KEYS = ("modality", "labels", "training")
_log = get_logger(__name__)


def load_msd(path: Path) -> Dataset:
    """Load an MSD task folder (or its dataset.json).

    Raises:
        DatasetError: for the first structural problem (see :func:`read_msd`).
    """
    return strict(read_msd(path))


def read_msd(path: Path) -> LoadResult:
    """Read an MSD task folder leniently, collecting every structural problem."""
    root = dataset_root(Path(path))
    source = root / "dataset.json"
    data, problem = read_json(source)
    if data is None:
        return LoadResult(None, (problem,) if problem else ())
    problems = missing_keys(data, REQUIRED_KEYS, source=source)
    channel_names = _index_map(data.get("modality"), "modality", source, problems)
    label_names = _index_map(data.get("labels"), "labels", source, problems)
    training = _entries(data.get("training"), "training", source, problems)
    test = _entries(data.get("test", []), "test", source, problems)
    if not channel_names or not label_names or training is None or test is None:
        return LoadResult(None, tuple(problems))
    reader = _CaseReader(root, source, len(channel_names), problems)
    cases = [c for c in (reader.case(e, labelled=True) for e in training) if c is not None]
    test_cases = [c for c in (reader.case(e, labelled=False) for e in test) if c is not None]
    scheme, messages = parse_label_scheme({name: value for value, name in label_names.items()})
    problems += [Problem(None, source, "dataset_json", m) for m in messages]
    num_training = data.get("numTraining")
    if num_training is not None:
        if isinstance(num_training, int) and not isinstance(num_training, bool):
            problems += check_num_training(num_training, len(cases), source=source)
        else:
            message = f"'numTraining' must be an integer, got {num_training!r:.40}"
            problems.append(Problem(None, source, "dataset_json", message))
            num_training = None
    dataset = Dataset(
        name=str(data.get("name", root.name)),
        root=root,
        format="msd",
        channel_names=tuple(channel_names.values()),
        labels=scheme.labels,
        cases=tuple(cases),
        test_cases=tuple(test_cases),
        file_ending=reader.ending or ".nii.gz",
        num_training=num_training,
        source=source,
        ignore_label=scheme.ignore_label,
    )
    return LoadResult(dataset, tuple(problems + dataset_problems(dataset)))


def _index_map(raw: object, key: str, source: Path, problems: list[Problem]) -> dict[int, str]:
    """``{"0": "FLAIR", "1": "T1w"}`` -> {0: "FLAIR", 1: "T1w"} (sorted by index)."""
    if raw is None:
        return {}
    if isinstance(raw, dict) and raw and all(str(k).isdigit() for k in raw):
        return {int(k): str(v) for k, v in sorted(raw.items(), key=lambda kv: int(kv[0]))}
    message = f'{key!r} must map integer strings to names, e.g. {{"0": "..."}}; got {raw!r:.80}'
    problems.append(Problem(None, source, "dataset_json", message))
    return {}


def _entries(raw: object, key: str, source: Path, problems: list[Problem]) -> list[Any] | None:
    if raw is None:
        return None
    if isinstance(raw, list):
        return raw
    message = f"{key!r} must be a list, got {type(raw).__name__}"
    problems.append(Problem(None, source, "dataset_json", message))
    return None


class _CaseReader:
    """Turns ``training``/``test`` entries into cases, recording problems as it goes."""

    def __init__(self, root: Path, source: Path, num_channels: int, problems: list[Problem]):
        self.root = root
        self.source = source
        self.num_channels = num_channels
        self.problems = problems
        self.ending: str | None = None

    def case(self, entry: object, *, labelled: bool) -> Case | None:
        image_ref = entry.get("image") if isinstance(entry, dict) else entry
        if not isinstance(image_ref, str):
            message = f"entry must name an 'image' path, got {entry!r:.80}"
            self.problems.append(Problem(None, self.source, "dataset_json", message))
            return None
        image = self.root / image_ref
        if image.name.startswith("._"):
            _log.debug("ignoring macOS resource file %s", image)
            return None
        try:
            ending = file_ending(image)
        except DatasetError as err:
            self.problems.append(Problem.from_error(err, "file_name"))
            return None
        self.ending = self.ending or ending
        case_id = image.name[: -len(ending)]
        if bad_case_id(case_id, self.source, self.problems):
            return None
        label = None
        if labelled:
            label_ref = entry.get("label") if isinstance(entry, dict) else None
            if not isinstance(label_ref, str):
                message = "training entry has no 'label' path"
                self.problems.append(Problem(case_id, self.source, "dataset_json", message))
            else:
                label = self.root / label_ref
        channels, in_one_file = self._channels(image, case_id, ending)
        return Case(case_id, channels, label, channels_in_one_file=in_one_file)

    def _channels(self, image: Path, case_id: str, ending: str) -> tuple[tuple[Path, ...], bool]:
        per_channel = tuple(
            image.parent / f"{case_id}_{i:04d}{ending}" for i in range(self.num_channels)
        )
        if not image.is_file() and per_channel[0].is_file():
            return per_channel, False
        return (image,), self.num_channels > 1
