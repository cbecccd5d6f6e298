"""Out-of-fold predictions of ensembles, streamed one case at a time.

An ensemble's prediction of a case is the label map of the mean of its members' out-of-fold
probabilities (``validation/<case>.npz``, float16 K×Z×Y×X in the original geometry): the
argmax of the softmax, or, for region-based training, the regions' sigmoids thresholded at
0.5 and painted in ``regions_class_order``
(:func:`~autoseg.data.labels.labels_from_probabilities`). Only one case's probabilities
(one array per member) are in memory at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from autoseg.data.imageio import read_image
from autoseg.data.labels import labels_from_probabilities
from autoseg.errors import InputError
from autoseg.evaluation.evaluate import as_label_map
from autoseg.evaluation.metrics import ROW_KEYS, compute_case_metrics
from autoseg.evaluation.oof import OOFCase, read_probabilities, read_reference
from autoseg.parallel import map_cases
from autoseg.planner.plans import Plans
from autoseg.typing import Spacing3

__all__ = [
    "OOFPredictions",
    "OutputSpec",
    "ensemble_label_map",
    "ensemble_tables",
    "members_per_case",
]

Prediction = tuple[np.ndarray, np.ndarray, Spacing3]


@dataclass(frozen=True)
class OutputSpec:
    """What the stored probabilities hold and how they become labels and scores.

    Attributes:
        num_outputs: K: classes (background included) or regions.
        regions_class_order: Region-based training: the label each region paints; None:
            softmax classes (argmax).
        ignore_label: Reference value left out of every mask, or None.
    """

    num_outputs: int
    regions_class_order: tuple[int, ...] | None = None
    ignore_label: int | None = None

    @classmethod
    def of(cls, plans: Plans) -> OutputSpec:
        return cls(plans.num_outputs, plans.regions_class_order, plans.ignore_label)

    def labels(self, total: np.ndarray, members: int) -> np.ndarray:
        """The label map of the sum of ``members`` probability stacks."""
        if self.regions_class_order is None:  # the argmax of a sum is the argmax of the mean
            return _argmax(total)
        return labels_from_probabilities(total / members, self.regions_class_order)


def _argmax(total: np.ndarray) -> np.ndarray:
    return np.argmax(total, axis=0).astype(np.uint8 if total.shape[0] <= 256 else np.int32)


def ensemble_label_map(
    members: Sequence[OOFCase], outputs: OutputSpec | int, shape: Sequence[int]
) -> np.ndarray:
    """The label map of the mean probabilities of one case's members (Z×Y×X).

    Args:
        members: The case's out-of-fold files, one per member configuration.
        outputs: What the probabilities hold (or K softmax classes, background included).
        shape: The case's original (Z, Y, X) shape.

    Raises:
        InputError: a missing, unreadable or misshaped ``.npz``.
    """
    spec = outputs if isinstance(outputs, OutputSpec) else OutputSpec(int(outputs))
    total = np.zeros((spec.num_outputs, *shape), dtype=np.float32)
    for member in members:
        total += read_probabilities(member, spec.num_outputs, shape)
    return spec.labels(total, len(members))


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
    members, ensembles, labels, regions, outputs = job
    reference, geometry = read_reference(members[0])
    probabilities = [read_probabilities(m, outputs.num_outputs, reference.shape) for m in members]
    out = []
    for ensemble in ensembles:
        prediction = outputs.labels(sum(probabilities[i] for i in ensemble), len(ensemble))
        rows = compute_case_metrics(
            prediction,
            reference,
            geometry.spacing,
            labels,
            regions,
            ignore_label=outputs.ignore_label,
        )
        out.append([{"case": members[0].case_id, "fold": members[0].fold, **r} for r in rows])
    return out


def ensemble_tables(
    cases: Mapping[str, Sequence[OOFCase]],
    ensembles: Sequence[tuple[str, ...]],
    labels: Sequence[int],
    regions: Mapping[str, Sequence[int]],
    outputs: OutputSpec | int,
    *,
    num_workers: int = 1,
) -> dict[tuple[str, ...], pd.DataFrame]:
    """Per-case metric tables of every ensemble, reading each case's probabilities once.

    Args:
        cases: Configuration -> its out-of-fold cases (sorted by case id).
        ensembles: Tuples of configuration names to average.
        labels: Foreground labels to score.
        regions: Region name -> label values.
        outputs: What the probabilities hold (or K softmax classes, background included).
        num_workers: Processes scoring cases in parallel.

    Returns:
        Ensemble -> table with ``case``, ``fold`` and the columns of ``compute_case_metrics``.
    """
    names = sorted({name for ensemble in ensembles for name in ensemble}, key=list(cases).index)
    index = [tuple(names.index(c) for c in ensemble) for ensemble in ensembles]
    spec = outputs if isinstance(outputs, OutputSpec) else OutputSpec(int(outputs))
    jobs = [(members, index, labels, regions, spec) for members in members_per_case(cases, names)]
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

    One member: its label maps as written by training. Several: the label map of their mean
    probabilities. Suits :func:`~autoseg.ensembling.postprocessing.decide_postprocessing`
    without holding every case in memory.
    """

    def __init__(self, members: Sequence[Sequence[OOFCase]], outputs: OutputSpec | int) -> None:
        self._members = members  # per case: one OOFCase per member configuration
        self._outputs = outputs

    def __len__(self) -> int:
        return len(self._members)

    def __getitem__(self, index: int) -> Prediction:  # type: ignore[override]
        members = self._members[index]
        reference, geometry = read_reference(members[0])
        if len(members) == 1:
            array, _ = read_image(members[0].prediction)
            prediction = as_label_map(array, members[0].case_id, members[0].prediction)
        else:
            prediction = ensemble_label_map(members, self._outputs, reference.shape)
        return prediction, reference, geometry.spacing

    def __iter__(self) -> Iterator[Prediction]:
        return (self[i] for i in range(len(self)))
