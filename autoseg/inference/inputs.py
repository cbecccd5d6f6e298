"""Read ``autoseg predict``'s INPUT into cases: a folder, a CSV manifest, or one case's files.

Four forms, told apart by the path(s) given:

- **Dataset**: a dataset folder (with dataset.json) or description file (dataset.json, a
  DeepMedic list descriptor): its test cases (nnU-Net's ``imagesTs/``, the MSD ``test``
  list, DeepMedic's test lists), with their ROI masks.
- **Folder** of images in nnU-Net naming: ``{case}_{XXXX}{ending}`` with ``XXXX`` = 0000,
  0001, ... one file per channel in the model's channel order (``{ending}``: .nii.gz, .nii,
  .nrrd, .mha, ...); or in MSD naming, ``{case}{ending}``: one file per case (a 4D file
  holding every channel for a multi-channel model). ROI masks, for models trained with
  them, are ``{case}_roi{ending}`` next to the images. A folder mixing both namings is an
  error.
- **CSV manifest** (``.csv``): a ``case`` column, one column per channel in the model's
  channel order (every column but ``case``, ``label``, ``roi``, ``patient``, ``group``), an
  optional ``roi`` column; relative paths resolve against the CSV's folder. ``label``,
  ``patient`` and ``group`` are ignored.
- **Files** of one case: one file per channel, in channel order, or a single 4D file holding
  every channel. The case is named after the first file (ending and ``_XXXX`` removed); an
  ROI mask is given with ``--roi``.

Problems that concern one case (an unexpected channel file, a missing ROI mask) are kept per
case, so that the other cases can still be predicted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from autoseg.data.dataset import Case
from autoseg.data.formats import read_dataset
from autoseg.data.formats.manifest import RESERVED_COLUMNS
from autoseg.data.imageio import SUPPORTED_ENDINGS, file_ending
from autoseg.errors import AutosegError, ConfigError, DatasetError, InputError
from autoseg.frozendict import FrozenDict
from autoseg.log import get_logger
from autoseg.names import case_id_problem, inside

__all__ = ["PredictionInputs", "read_inputs"]

logger = get_logger(__name__)
_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$", re.DOTALL)
_ROI = re.compile(r"^(?P<case>.+)_roi$", re.DOTALL)


@dataclass(frozen=True)
class PredictionInputs:
    """The cases of an INPUT.

    Attributes:
        cases: Cases in input order (labels never set).
        endings: Case id -> file ending of its images (the output gets the same).
        problems: Case id -> what is wrong with that case's files (found while listing).
        kind: ``"dataset"``, ``"folder"``, ``"csv"`` or ``"files"``.
    """

    cases: tuple[Case, ...]
    endings: Mapping[str, str]
    problems: Mapping[str, AutosegError] = field(default_factory=dict)
    kind: str = "folder"

    def __post_init__(self) -> None:
        object.__setattr__(self, "endings", FrozenDict(dict(self.endings)))
        object.__setattr__(self, "problems", FrozenDict(dict(self.problems)))

    def output_path(self, out_dir: Path, case_id: str, suffix: str | None = None) -> Path:
        """``out_dir/<case><suffix>`` (default suffix: the input's ending), checked to lie
        inside ``out_dir``."""
        return inside(out_dir, case_id, self.endings[case_id] if suffix is None else suffix)


def _ending(path: Path) -> str | None:
    name = path.name.lower()
    return next((e for e in SUPPORTED_ENDINGS if name.endswith(e)), None)


def read_inputs(
    paths: Sequence[Path],
    channel_names: Sequence[str],
    *,
    use_roi: bool,
    roi: Path | None = None,
) -> PredictionInputs:
    """List the cases of INPUT (a folder, a CSV manifest, or the files of one case).

    Args:
        paths: The ``-i`` values: one dataset (folder with dataset.json, or a description
            file), one folder of images, one ``.csv``, or one file per channel.
        channel_names: The model's channels, in order.
        use_roi: The model was trained with ROI masks (each case needs one).
        roi: ROI mask of a single case given as files.

    Raises:
        InputError: if the input does not exist, holds no case, or is malformed as a whole.
        DatasetError: if a dataset given as input cannot be loaded.
        ConfigError: if ``roi`` is given with a folder or CSV input.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError("no input given")
    if len(paths) == 1 and not paths[0].exists():
        raise InputError("input not found", path=paths[0])
    is_folder = len(paths) == 1 and paths[0].is_dir()
    is_csv = len(paths) == 1 and paths[0].suffix.lower() == ".csv"
    is_dataset = len(paths) == 1 and _is_dataset(paths[0])
    if roi is not None and (is_folder or is_csv or is_dataset):
        raise ConfigError("--roi is for a single case given as files; folders use <case>_roi files")
    if is_dataset:
        return _read_dataset(paths[0], len(channel_names), use_roi)
    if is_folder:
        return _read_folder(paths[0], len(channel_names), use_roi)
    if is_csv:
        return _read_csv(paths[0], channel_names, use_roi)
    return _read_files(paths, channel_names, use_roi, roi)


def _check_case_id(case_id: str, path: Path, where: str = "") -> None:
    """Outputs are named after the case: an id that is no plain file name stops the run."""
    problem = case_id_problem(case_id)
    if problem is not None:
        raise InputError(f"{where}{problem}", path=path)


def _missing_roi(case_id: str, hint: str) -> InputError:
    return InputError(
        f"the model was trained with ROI masks and this case has none ({hint})", case_id=case_id
    )


def _is_dataset(path: Path) -> bool:
    """A dataset folder (with dataset.json) or a dataset description file (.json)."""
    if path.is_dir():
        return (path / "dataset.json").is_file()
    return path.is_file() and path.suffix.lower() == ".json"


def _read_dataset(path: Path, num_channels: int, use_roi: bool) -> PredictionInputs:
    """The test cases of a dataset (any format autoseg reads). Problems of its training cases
    do not matter here; those of the test cases' files are found by the checks of predict.
    A case id that cannot name a file stops the run (the readers leave such cases out)."""
    result = read_dataset(path)
    dataset = result.dataset
    if dataset is None:
        raise result.problems[0].to_error(extra=len(result.problems) - 1)
    for problem in result.problems:  # a case that cannot name its output: refused, not skipped
        if problem.check == "case_id":
            raise InputError(problem.message, path=problem.path)
    if dataset.num_channels != num_channels:
        raise InputError(
            f"the dataset has {dataset.num_channels} channel(s) "
            f"({', '.join(dataset.channel_names)}) but the model has {num_channels}",
            path=path,
        )
    if not dataset.test_cases:
        raise InputError(
            "the dataset has no test cases to predict (nnU-Net: imagesTs/; MSD: a 'test' list; "
            "DeepMedic lists: 'channelsTest')",
            path=path,
        )
    cases, endings, problems = [], {}, {}
    for case in dataset.test_cases:
        endings[case.case_id] = file_ending(case.channels[0])
        if use_roi and case.roi is None:
            problems[case.case_id] = _missing_roi(case.case_id, "give the dataset's test ROI masks")
        cases.append(
            Case(
                case.case_id,
                case.channels,
                roi=case.roi if use_roi else None,
                channels_in_one_file=case.channels_in_one_file,
            )
        )
    return PredictionInputs(tuple(cases), endings, problems, "dataset")


def _read_folder(folder: Path, num_channels: int, use_roi: bool) -> PredictionInputs:
    channels: dict[str, dict[int, Path]] = {}
    rois: dict[str, Path] = {}
    whole: dict[str, Path] = {}  # MSD naming: {case}{ending}, one file per case
    for path in sorted(p for p in folder.iterdir() if p.is_file() or p.is_symlink()):
        ending = _ending(path)
        if path.name.startswith(".") or ending is None:
            continue
        stem = path.name[: -len(ending)]
        if (match := _CHANNEL.match(stem)) is not None:
            channels.setdefault(match["case"], {})[int(match["channel"])] = path
        elif (match := _ROI.match(stem)) is not None:
            rois[match["case"]] = path
        else:
            whole[stem] = path
    if whole and channels:
        stray = next(iter(whole.values()))
        raise InputError(
            f"file name does not follow {{case}}_{{XXXX}}{_ending(stray)} (XXXX: 4-digit channel "
            f"index) or {{case}}_roi{_ending(stray)} as the other files of the folder do",
            path=stray,
        )
    if whole:
        for case_id, path in whole.items():
            _check_case_id(case_id, path)
        return _read_whole_files(folder, whole, rois, num_channels, use_roi)
    for case_id, found in channels.items():
        _check_case_id(case_id, found[min(found)])
    if not channels:
        raise InputError(
            "no input images found; expected files named {case}_{XXXX}.nii.gz "
            "(XXXX = 0000 for the first channel) or {case}.nii.gz (MSD naming)",
            path=folder,
        )
    cases, endings, problems = [], {}, {}
    for case_id, found in channels.items():
        first = found[min(found)]
        ending = file_ending(first)
        endings[case_id] = ending
        extra = sorted(i for i in found if i >= num_channels)
        if extra:
            problems[case_id] = InputError(
                f"channel file(s) {', '.join(f'{i:04d}' for i in extra)} found but the model "
                f"has {num_channels} channel(s): expected {case_id}_0000..."
                f"{case_id}_{num_channels - 1:04d}{ending}",
                case_id=case_id,
                path=found[extra[0]],
            )
        paths = tuple(
            found.get(i, folder / f"{case_id}_{i:04d}{ending}") for i in range(num_channels)
        )
        roi = rois.pop(case_id, None) if use_roi else None
        if use_roi and roi is None and case_id not in problems:
            problems[case_id] = _missing_roi(case_id, f"put {case_id}_roi{ending} in {folder}")
        cases.append(Case(case_id, paths, roi=roi))
    for path in rois.values() if use_roi else ():
        logger.warning("%s: ROI mask without images, ignored", path)
    return PredictionInputs(tuple(cases), endings, problems, "folder")


def _read_whole_files(
    folder: Path, files: dict[str, Path], rois: dict[str, Path], num_channels: int, use_roi: bool
) -> PredictionInputs:
    """MSD naming: one ``{case}{ending}`` file per case (4D for several channels)."""
    cases, endings, problems = [], {}, {}
    for case_id, path in files.items():
        ending = file_ending(path)
        endings[case_id] = ending
        roi = rois.pop(case_id, None) if use_roi else None
        if use_roi and roi is None:
            problems[case_id] = _missing_roi(case_id, f"put {case_id}_roi{ending} in {folder}")
        cases.append(Case(case_id, (path,), roi=roi, channels_in_one_file=num_channels > 1))
    for path in rois.values() if use_roi else ():
        logger.warning("%s: ROI mask without images, ignored", path)
    return PredictionInputs(tuple(cases), endings, problems, "folder")


def _read_csv(source: Path, channel_names: Sequence[str], use_roi: bool) -> PredictionInputs:
    try:
        table = pd.read_csv(source, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise InputError(f"cannot parse the CSV: {first}", path=source) from None
    table.columns = [str(c).strip() for c in table.columns]
    columns = [c for c in table.columns if c not in RESERVED_COLUMNS]
    if "case" not in table.columns or len(columns) != len(channel_names):
        raise InputError(
            f"the CSV needs a 'case' column and one column per channel of the model "
            f"({len(channel_names)}: {', '.join(channel_names)}); "
            f"got columns {list(table.columns)}",
            path=source,
        )
    if columns != list(channel_names):
        logger.warning(
            "CSV channel columns %s differ from the model's channels %s; using column order",
            columns,
            list(channel_names),
        )
    cases, endings, problems = [], {}, {}
    for row_number, row in enumerate(table.to_dict("records"), start=2):
        case_id = str(row["case"]).strip()
        if not case_id or case_id in endings:
            what = "an empty" if not case_id else f"a repeated ({case_id!r})"
            raise InputError(f"row {row_number} has {what} 'case' cell", path=source)
        _check_case_id(case_id, source, f"row {row_number}: ")
        cells = [str(row[c]).strip() for c in columns]
        roi_cell = str(row.get("roi", "")).strip()
        case = Case(
            case_id,
            tuple(_resolve(source, c) for c in cells),
            roi=_resolve(source, roi_cell) if (use_roi and roi_cell) else None,
        )
        endings[case_id] = _case_ending(case, source)
        if not all(cells):
            problems[case_id] = InputError(
                "empty channel path in the CSV", case_id=case_id, path=source
            )
        elif use_roi and case.roi is None:
            problems[case_id] = _missing_roi(case_id, "add a 'roi' column to the CSV")
        cases.append(case)
    if not cases:
        raise InputError("the CSV lists no case", path=source)
    return PredictionInputs(tuple(cases), endings, problems, "csv")


def _resolve(source: Path, cell: str) -> Path:
    path = Path(cell).expanduser()
    return path if path.is_absolute() else source.parent / path


def _case_ending(case: Case, source: Path) -> str:
    try:
        return file_ending(case.channels[0])
    except DatasetError:
        raise DatasetError(
            f"unsupported image format {case.channels[0].name!r}; expected one of "
            f"{', '.join(SUPPORTED_ENDINGS)}",
            case_id=case.case_id,
            path=source,
        ) from None


def _read_files(
    paths: Sequence[Path], channel_names: Sequence[str], use_roi: bool, roi: Path | None
) -> PredictionInputs:
    ending = file_ending(paths[0])
    stem = paths[0].name[: -len(ending)]
    match = _CHANNEL.match(stem)
    case_id = match["case"] if match else stem
    _check_case_id(case_id, paths[0])
    count = len(channel_names)
    one_file = len(paths) == 1 and count > 1
    if len(paths) != count and not one_file:
        raise InputError(
            f"{len(paths)} file(s) given but the model has {count} channel(s) "
            f"({', '.join(channel_names)}): give one file per channel, in that order",
            case_id=case_id,
        )
    case = Case(case_id, tuple(paths), roi=roi if use_roi else None, channels_in_one_file=one_file)
    problems = {}
    if use_roi and roi is None:
        problems[case_id] = _missing_roi(case_id, "pass --roi FILE")
    elif roi is not None and not use_roi:
        logger.warning("the model was trained without ROI masks; --roi is ignored")
    return PredictionInputs((case,), {case_id: ending}, problems, "files")
