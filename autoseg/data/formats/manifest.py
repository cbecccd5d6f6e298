"""CSV manifests: one row per case, read with pandas.

Columns: ``case`` (required), ``label``, ``roi`` (ROI mask, > 0 inside, as DeepMedic reads it) and
``patient`` or ``group`` (patient id) are reserved; every other column is a channel, in
column order, its header the channel name (a column named ``CT`` selects CT
normalisation). Relative paths resolve against the CSV's folder. Rows with an empty
label are test cases. Labels are declared in an optional sidecar ``<csv stem>.json``
(``{"labels": {"background": 0, "lesion": 1}, "name": "..."}``, nnU-Net style: lists are
regions, ``regions_class_order`` asks for region-based training, ``ignore`` is the ignore
label); without it they are inferred by reading every label map once (names
``label_<v>``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from autoseg.data.checks import Problem
from autoseg.data.dataset import Case, Dataset
from autoseg.data.formats._common import (
    LoadResult,
    bad_case_id,
    dataset_problems,
    first_ending,
    infer_labels,
    parse_label_map,
    read_json,
    strict,
)
from autoseg.data.labels import LabelScheme
from autoseg.log import get_logger

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RESERVED_COLUMNS", "SIDECAR_KEYS", "load_manifest", "read_manifest"]

RESERVED_COLUMNS = ("case", "label", "roi", "patient", "group")
SIDECAR_KEYS = ("labels", "regions_class_order", "name", "description")
_log = get_logger(__name__)


def load_manifest(path: Path) -> Dataset:
    """Load a CSV manifest.

    Raises:
        DatasetError: for the first structural problem (see :func:`read_manifest`).
    """
    return strict(read_manifest(path))


def read_manifest(path: Path) -> LoadResult:
    """Read a CSV manifest leniently, collecting every structural problem."""
    source = Path(path)
    table, problem = _read_csv(source)
    if table is None:
        return LoadResult(None, (problem,) if problem else ())
    problems: list[Problem] = []
    group_column = _group_column(table, source, problems)
    channel_columns = [c for c in table.columns if c not in RESERVED_COLUMNS]
    if "case" not in table.columns:
        problems.append(Problem(None, source, "manifest", "the CSV has no 'case' column"))
    if not channel_columns:
        message = "the CSV has no channel column (every column but case/label/roi/patient/group)"
        problems.append(Problem(None, source, "manifest", message))
    if problems:
        return LoadResult(None, tuple(problems))
    cases, test_cases = _cases(table, source, channel_columns, group_column, problems)
    sidecar = source.with_suffix(".json")
    name = source.stem
    if sidecar.is_file():
        name, scheme = _read_sidecar(sidecar, name, problems)
    else:
        scheme = LabelScheme(infer_labels(cases))
    ending = first_ending(cases + test_cases)
    dataset = Dataset(
        name=name,
        root=source.parent,
        format="manifest",
        channel_names=tuple(channel_columns),
        labels=scheme.labels,
        cases=tuple(cases),
        test_cases=tuple(test_cases),
        file_ending=ending,
        regions=scheme.regions,
        source=source,
        regions_class_order=scheme.regions_class_order,
        ignore_label=scheme.ignore_label,
    )
    return LoadResult(dataset, tuple(problems + dataset_problems(dataset)))


def _read_csv(source: Path) -> tuple[pd.DataFrame | None, Problem | None]:
    import pandas as pd  # only CSV datasets need it (a second on every plan otherwise)

    if not source.is_file():
        return None, Problem(None, source, "manifest", "file not found")
    try:
        table = pd.read_csv(source, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return None, Problem(None, source, "manifest", f"cannot parse the CSV: {first}")
    table.columns = [str(c).strip() for c in table.columns]
    duplicated = sorted({c for c in table.columns if list(table.columns).count(c) > 1})
    if duplicated or any(c.startswith("Unnamed:") for c in table.columns):
        message = f"every column needs a unique, non-empty header; got {list(table.columns)}"
        return None, Problem(None, source, "manifest", message)
    return table.apply(lambda col: col.str.strip()), None


def _group_column(table: pd.DataFrame, source: Path, problems: list[Problem]) -> str | None:
    present = [c for c in ("patient", "group") if c in table.columns]
    if len(present) > 1:
        message = "use either a 'patient' or a 'group' column, not both"
        problems.append(Problem(None, source, "manifest", message))
    return present[0] if present else None


def _cases(
    table: pd.DataFrame,
    source: Path,
    channel_columns: list[str],
    group_column: str | None,
    problems: list[Problem],
) -> tuple[list[Case], list[Case]]:
    """Training cases (rows with a label) and test cases (rows without)."""
    cases: list[Case] = []
    test_cases: list[Case] = []
    for row_number, row in enumerate(table.to_dict("records"), start=2):
        case_id = row["case"]
        if not case_id:
            message = f"row {row_number} has an empty 'case' cell"
            problems.append(Problem(None, source, "manifest", message))
            continue
        if bad_case_id(case_id, source, problems, f"row {row_number}: "):
            continue
        empty = [c for c in channel_columns if not row[c]]
        if empty:
            message = f"empty path in channel column(s) {', '.join(empty)}"
            problems.append(Problem(case_id, source, "manifest", message))
            continue
        case = Case(
            case_id=case_id,
            channels=tuple(_absolute(source, row[c]) for c in channel_columns),
            label=_resolve(source, row.get("label", "")),
            roi=_resolve(source, row.get("roi", "")),
            group=(row[group_column] or None) if group_column else None,
        )
        (cases if case.label is not None else test_cases).append(case)
    return cases, test_cases


def _resolve(source: Path, cell: str | None) -> Path | None:
    """The path in a CSV cell (None for an empty cell)."""
    return _absolute(source, cell) if cell else None


def _absolute(source: Path, cell: str) -> Path:
    """A cell's path, relative paths resolved against the CSV's folder."""
    path = Path(cell).expanduser()
    return path if path.is_absolute() else source.parent / path


def _read_sidecar(
    sidecar: Path, default_name: str, problems: list[Problem]
) -> tuple[str, LabelScheme]:
    data, problem = read_json(sidecar)
    if data is None:
        problems.extend([problem] if problem else [])
        return default_name, LabelScheme({})
    unknown = sorted(set(data) - set(SIDECAR_KEYS))
    if unknown:
        message = f"unknown key(s) {unknown}; expected keys: {', '.join(SIDECAR_KEYS)}"
        problems.append(Problem(None, sidecar, "dataset_json", message))
    name = str(data.get("name", default_name))
    if "labels" not in data:
        problems.append(Problem(None, sidecar, "dataset_json", "missing key 'labels'"))
        return name, LabelScheme({})
    scheme, found = parse_label_map(
        data["labels"], source=sidecar, regions_class_order=data.get("regions_class_order")
    )
    problems += found
    return name, scheme or LabelScheme({})
