"""Preprocess every training case of a dataset for each planned data identifier.

Cases are processed in parallel (``-np``); each case's files are written atomically with
its properties JSON last, so a killed run resumes where it stopped and a re-run skips
finished cases (same raw files, same settings).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from autoseg.artefacts import files_digest
from autoseg.data.case_io import load_case
from autoseg.data.dataset import Case, Dataset
from autoseg.leftovers import clean_temporaries
from autoseg.log import get_logger
from autoseg.parallel import map_cases
from autoseg.preprocessing.pipeline import PreprocessingSettings, preprocess_arrays
from autoseg.preprocessing.store import is_case_complete, save_preprocessed_case
from autoseg.workspace import Workspace

__all__ = ["PreprocessingReport", "case_inputs", "preprocess_dataset"]

_log = get_logger(__name__)


@dataclass(frozen=True)
class PreprocessingReport:
    """How many cases were preprocessed and skipped, per data identifier."""

    processed: dict[str, int]
    skipped: dict[str, int]


def case_inputs(case: Case, settings: PreprocessingSettings) -> dict[str, str]:
    """Digests recorded with a preprocessed case (raw files + settings)."""
    return {"case_files": files_digest(case.files), "settings": settings.digest()}


def _preprocess_one(
    case: Case, dataset: Dataset, settings: PreprocessingSettings, workspace: Workspace
) -> None:
    arrays = load_case(case, dataset)
    result = preprocess_arrays(arrays, settings, case_inputs(case, settings))
    save_preprocessed_case(workspace.preprocessed_dir(settings.data_identifier), result)


def preprocess_dataset(
    dataset: Dataset,
    settings_list: Sequence[PreprocessingSettings],
    workspace: Workspace,
    *,
    num_workers: int = 1,
) -> PreprocessingReport:
    """Preprocess all training cases for every data identifier in ``settings_list`` (once
    per identifier: configurations may share their preprocessed data).

    Raises:
        DatasetError: if a case cannot be loaded (finished cases stay on disk).
    """
    processed: dict[str, int] = {}
    skipped: dict[str, int] = {}
    done: set[str] = set()
    for settings in settings_list:
        if settings.data_identifier in done:
            continue
        done.add(settings.data_identifier)
        folder = workspace.preprocessed_dir(settings.data_identifier)
        clean_temporaries(folder)
        todo = [
            c
            for c in dataset.cases
            if not is_case_complete(folder, c.case_id, case_inputs(c, settings))
        ]
        skipped[settings.data_identifier] = len(dataset.cases) - len(todo)
        processed[settings.data_identifier] = len(todo)
        if not todo:
            _log.info("preprocessed data %s is up to date", settings.data_identifier)
            continue
        work = functools.partial(
            _preprocess_one, dataset=dataset, settings=settings, workspace=workspace
        )
        for _ in map_cases(
            work, todo, num_workers=num_workers, desc=f"preprocessing {settings.data_identifier}"
        ):
            pass
    return PreprocessingReport(processed, skipped)
