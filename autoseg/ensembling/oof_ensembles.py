"""Out-of-fold predictions of ensembles, streamed one case at a time.

An ensemble's prediction of a case is the argmax of the mean of its members' out-of-fold
softmax (``validation/<case>.npz``, float16 K×Z×Y×X in the original geometry). Only one
case's probabilities (one array per member) are in memory at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from autoseg.data.imageio import read_image
from autoseg.errors import InputError
from autoseg.evaluation.evaluate import as_label_map
from autoseg.evaluation.metrics import ROW_KEYS, compute_case_metrics
from autoseg.evaluation.oof import OOFCase, read_probabilities, read_reference
from autoseg.parallel import map_cases
from autoseg.typing import Spacing3

__all__ = ["OOFPredictions", "ensemble_label_map", "ensemble_tables", "members_per_case"]

Prediction = tuple[np.ndarray, np.ndarray, Spacing3]


def _argmax(total: np.ndarray) -> np.ndarray:
    return np.argmax(total, axis=0).astype(np.uint8 if total.shape[0] <= 256 else np.int32)


def ensemble_label_map(
    members: Sequence[OOFCase], num_classes: int, shape: Sequence[int]
) -> np.ndarray:
    """Argmax of the mean softmax of one case's members (Z×Y×X label map).

    Args:
        members: The case's out-of-fold files, one per member configuration.
        num_classes: K, background included.
        shape: The case's original (Z, Y, X) shape.

    Raises:
        InputError: a missing, unreadable or misshaped ``.npz``.
    """
    total = np.zeros((num_classes, *shape), dtype=np.float32)
    for member in members:
        total += read_probabilities(member, num_classes, shape)
    return _argmax(total)


def members_per_case(
    cases: Mapping[str, Sequence[OOFCase]], configs: Sequence[str]
) -> list[tuple[OOFCase, ...]]:
    """Regroup per-configuration case lists into one tuple of members per case.

    Raises:
        InputError: if the configurations do not hold the same out-of-fold cases.
    """
    lists = [cases[name] for name in configs]
    ids = [[c.case_id for c in cases_of] for cases_of in lists]
    if any(other != ids[0] for other in ids[1:]):
        raise InputError(
            f"configurations {', '.join(configs)} were validated on different cases; "
            "train them on the same splits.json"
        )
    return list(zip(*lists))


def _score_case(job: tuple[Any, ...]) -> list[list[dict[str, Any]]]:
    """Worker: metric rows of one case for every ensemble (index tuples into ``members``)."""
    members, ensembles, labels, regions, num_classes = job
    reference, geometry = read_reference(members[0])
    probabilities = [read_probabilities(m, num_classes, reference.shape) for m in members]
    out = []
    for ensemble in ensembles:
        prediction = _argmax(sum(probabilities[i] for i in ensemble))  # sum: same argmax as mean
        rows = compute_case_metrics(prediction, reference, geometry.spacing, labels, regions)
        out.append([{"case": members[0].case_id, "fold": members[0].fold, **r} for r in rows])
    return out


def ensemble_tables(
    cases: Mapping[str, Sequence[OOFCase]],
    ensembles: Sequence[tuple[str, ...]],
    labels: Sequence[int],
    regions: Mapping[str, Sequence[int]],
    num_classes: int,
    *,
    num_workers: int = 1,
) -> dict[tuple[str, ...], pd.DataFrame]:
    """Per-case metric tables of every ensemble, reading each case's probabilities once.

    Args:
        cases: Configuration -> its out-of-fold cases (sorted by case id).
        ensembles: Tuples of configuration names to average.
        labels: Foreground labels to score.
        regions: Region name -> label values.
        num_classes: K, background included.
        num_workers: Processes scoring cases in parallel.

    Returns:
        Ensemble -> table with ``case``, ``fold`` and the columns of ``compute_case_metrics``.
    """
    names = sorted({name for ensemble in ensembles for name in ensemble}, key=list(cases).index)
    index = [tuple(names.index(c) for c in ensemble) for ensemble in ensembles]
    jobs = [
        (members, index, labels, regions, num_classes) for members in members_per_case(cases, names)
    ]
    rows: list[list[dict[str, Any]]] = [[] for _ in ensembles]
    for result in map_cases(_score_case, jobs, num_workers=num_workers, desc="ensembles"):
        for i, case_rows in enumerate(result):
            rows[i].extend(case_rows)
    return {
        ensemble: pd.DataFrame.from_records(r, columns=["case", "fold", *ROW_KEYS])
        for ensemble, r in zip(ensembles, rows)
    }


class OOFPredictions(Sequence[Prediction]):
    """A candidate's out-of-fold ``(prediction, reference, spacing_mm)``, read on access.

    One member: its label maps as written by training. Several: the argmax of their mean
    softmax. Suits :func:`~autoseg.ensembling.postprocessing.decide_postprocessing` without
    holding every case in memory.
    """

    def __init__(self, members: Sequence[Sequence[OOFCase]], num_classes: int) -> None:
        self._members = members  # per case: one OOFCase per member configuration
        self._num_classes = num_classes

    def __len__(self) -> int:
        return len(self._members)

    def __getitem__(self, index: int) -> Prediction:  # type: ignore[override]
        members = self._members[index]
        reference, geometry = read_reference(members[0])
        if len(members) == 1:
            array, _ = read_image(members[0].prediction)
            prediction = as_label_map(array, members[0].case_id, members[0].prediction)
        else:
            prediction = ensemble_label_map(members, self._num_classes, reference.shape)
        return prediction, reference, geometry.spacing

    def __iter__(self) -> Iterator[Prediction]:
        return (self[i] for i in range(len(self)))
