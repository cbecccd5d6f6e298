"""Helpers shared by the format readers: lenient results, JSON, labels, file listing.

Every reader has a lenient form ``read_<format>(path) -> LoadResult`` that collects every
structural problem (for ``autoseg verify``) and a strict form ``load_<format>(path) ->
Dataset`` that raises the first one (:func:`strict`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autoseg.data.checks import (
    Problem,
    check_case_ids,
    check_declared_labels,
    missing_file_problem,
    unique_values,
)
from autoseg.data.dataset import Case, Dataset
from autoseg.data.imageio import file_ending, read_image
from autoseg.data.labels import LabelScheme, parse_label_scheme
from autoseg.errors import DatasetError
from autoseg.log import get_logger
from autoseg.names import case_id_problem
from autoseg.strict import load_json

_log = get_logger(__name__)

__all__ = [
    "LoadResult",
    "bad_case_id",
    "dataset_problems",
    "dataset_root",
    "first_ending",
    "infer_labels",
    "list_files",
    "missing_keys",
    "parse_label_map",
    "read_json",
    "strict",
]


@dataclass(frozen=True)
class LoadResult:
    """What a lenient reader found: the dataset (None when unloadable) and every problem."""

    dataset: Dataset | None
    problems: tuple[Problem, ...]


def bad_case_id(case_id: str, source: Path, problems: list[Problem], where: str = "") -> bool:
    """True (and a problem recorded) when ``case_id`` cannot name files; such a case is left
    out of the dataset, so no later message echoes its raw id."""
    problem = case_id_problem(case_id)
    if problem is not None:
        problems.append(Problem(None, source, "case_id", f"{where}{problem}"))
    return problem is not None


def strict(result: LoadResult) -> Dataset:
    """The dataset of ``result``, or the first problem raised as a :class:`DatasetError`."""
    if result.problems or result.dataset is None:
        if not result.problems:
            raise DatasetError("dataset could not be loaded")
        raise result.problems[0].to_error(extra=len(result.problems) - 1)
    return result.dataset


def dataset_root(path: Path) -> Path:
    """The dataset folder for a folder or its ``dataset.json``."""
    path = Path(path)
    return path.parent if path.name == "dataset.json" and path.is_file() else path


def read_json(path: Path) -> tuple[dict[str, Any] | None, Problem | None]:
    """Read a JSON object from ``path``; a problem if it is missing, invalid or not an object."""
    if not path.is_file():
        return None, Problem(None, path, "dataset_json", "file not found")
    try:
        data = load_json(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        message = f"invalid JSON: {err.msg} at line {err.lineno}, column {err.colno}"
        return None, Problem(None, path, "dataset_json", message)
    except (OSError, UnicodeDecodeError) as err:
        return None, Problem(None, path, "dataset_json", f"cannot read file: {err}")
    if not isinstance(data, dict):
        message = f"expected a JSON object at the top level, got {type(data).__name__}"
        return None, Problem(None, path, "dataset_json", message)
    return data, None


def missing_keys(
    data: Mapping[str, Any], required: Sequence[str], *, source: Path
) -> list[Problem]:
    """Problems for required keys missing from ``data`` (listing the expected keys)."""
    missing = [key for key in required if key not in data]
    if not missing:
        return []
    message = (
        f"missing key(s) {', '.join(repr(k) for k in missing)}; "
        f"required keys: {', '.join(required)}"
    )
    return [Problem(None, source, "dataset_json", message)]


def parse_label_map(
    raw: object, *, source: Path, regions_class_order: object = None
) -> tuple[LabelScheme | None, list[Problem]]:
    """Parse nnU-Net style ``labels`` ({name: value}, {name: [values]} for regions, an
    ``ignore`` label) and ``regions_class_order`` (see :mod:`autoseg.data.labels`).

    Returns:
        ``(scheme, problems)``; the scheme is None when ``labels`` is not a non-empty object.
    """
    if not isinstance(raw, dict) or not raw:
        message = f"'labels' must be a non-empty object {{name: value}}, got {raw!r:.80}"
        return None, [Problem(None, source, "dataset_json", message)]
    scheme, messages = parse_label_scheme(raw, regions_class_order)
    return scheme, [Problem(None, source, "dataset_json", m) for m in messages]


def list_files(folder: Path, ending: str) -> list[Path]:
    """Entries of ``folder`` ending with ``ending``, sorted; hidden and macOS ``._*`` skipped.

    Whatever the entry is (a dangling symbolic link, a folder) is listed, so the file checks
    say what is wrong with it instead of the case silently losing a file.
    """
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir() if p.name.endswith(ending) and not p.name.startswith(".")
    )


def dataset_problems(dataset: Dataset) -> list[Problem]:
    """Dataset-level problems every format shares.

    Declared labels (background, unique, consecutive), unique case ids, a non-empty
    training set, and files named by the description that do not exist.
    """
    source = dataset.source or dataset.root
    problems = check_declared_labels(dataset.labels, source=source)
    problems += check_case_ids([c.case_id for c in dataset.cases], source=source)
    problems += check_case_ids([c.case_id for c in dataset.test_cases], source=source, what="test")
    for case in dataset.cases + dataset.test_cases:
        problems += [missing_file_problem(case.case_id, p) for p in case.files if not p.is_file()]
    return problems


def infer_labels(cases: list[Case]) -> dict[str, int]:
    """Label names ``label_<v>`` (``background`` for 0) from the values in the label maps.

    Unreadable maps and non-integer values are skipped here; verify reports them.
    """
    values: set[int] = {0}
    for case in cases:
        if case.label is None or not case.label.is_file():
            continue
        try:
            array, _ = read_image(case.label)
        except DatasetError:
            continue
        found = unique_values(array)
        values.update(int(v) for v in found if np.isfinite(v) and float(v).is_integer())
    _log.debug("labels inferred from %d label maps: %s", len(cases), sorted(values))
    return {("background" if v == 0 else f"label_{v}"): v for v in sorted(values)}


def first_ending(cases: list[Case]) -> str:
    for case in cases:
        try:
            return file_ending(case.channels[0])
        except DatasetError:
            continue
    return ".nii.gz"
