"""``autoseg verify``: find everything a training run would later trip on, all at once.

:func:`verify_dataset` reads the dataset leniently (every structural problem of
dataset.json / the CSV / the file layout), then reads every case and runs the per-case
checks shared with :func:`autoseg.data.case_io.load_case`: missing or unreadable files
(truncated .gz included), dimensionality, shape and geometry against the case's first
channel, NaN/Inf voxels, non-integer or undeclared label values, unusable ROI masks
(negative, or nothing > 0).
It never stops at the first problem. With a cache (``autoseg plan``'s ``verify.json``, see
:mod:`autoseg.data.verify_cache`) only the cases whose files changed are read again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autoseg.atomic import to_jsonable
from autoseg.data.case_io import CaseExpectations, inspect_case
from autoseg.data.checks import Problem, check_label_usage, unique_values
from autoseg.data.dataset import Case, Dataset
from autoseg.data.formats import read_dataset
from autoseg.data.verify_cache import (
    CaseRecord,
    load_verify_cache,
    reusable,
    save_verify_cache,
)
from autoseg.parallel import map_cases

__all__ = [
    "CaseRecord",
    "DatasetSummary",
    "Problem",
    "VerifyReport",
    "format_report",
    "verify_cases",
    "verify_dataset",
]


@dataclass(frozen=True)
class DatasetSummary:
    """A short description of a dataset, from the cases that read cleanly.

    Shapes are (Z, Y, X) voxels; spacings (Z, Y, X) in mm; ranges are per axis.
    """

    name: str
    format: str
    num_cases: int
    num_test_cases: int
    channel_names: tuple[str, ...]
    labels: dict[str, int]
    regions: dict[str, tuple[int, ...]]
    label_values_found: tuple[int, ...]
    shape_range: tuple[tuple[int, ...], tuple[int, ...]] | None
    spacing_range: tuple[tuple[float, ...], tuple[float, ...]] | None
    has_roi: bool
    num_groups: int
    ignore_label: int | None = None
    regions_class_order: tuple[int, ...] | None = None

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        classes = sorted(
            ((v, n) for n, v in self.labels.items() if v != self.ignore_label), key=lambda i: i[0]
        )
        labels = ", ".join(f"{v} {n}" for v, n in classes)
        lines = [
            f"cases: {self.num_cases} training ({self.num_groups} patient groups), "
            f"{self.num_test_cases} test",
            "channels: " + ", ".join(f"{i} {n}" for i, n in enumerate(self.channel_names)),
            f"labels: {labels} (values in the label maps: {_join(self.label_values_found)})",
        ]
        if self.ignore_label is not None:
            lines.append(
                f"ignore label: {self.ignore_label} (unannotated voxels: left out of the loss, "
                "the sampling, the pseudo-Dice and evaluation; never predicted)"
            )
        if self.regions:
            listed = ", ".join(f"{n} {_tuple(v)}" for n, v in self.regions.items())
            if self.regions_class_order is not None:
                order = ", ".join(str(v) for v in self.regions_class_order)
                lines.append(
                    f"regions (region-based training, one sigmoid output each; predictions "
                    f"paint labels {order} in this order): {listed}"
                )
            else:
                lines.append(
                    f"regions (evaluated only; add regions_class_order to dataset.json to train "
                    f"on them): {listed}"
                )
        if self.shape_range is not None:
            smallest, largest = self.shape_range
            lines.append(f"shape (Z, Y, X): {_tuple(smallest)} .. {_tuple(largest)}")
        if self.spacing_range is not None:
            low, high = self.spacing_range
            lines.append(f"spacing (mm, Z, Y, X): {_tuple(low)} .. {_tuple(high)}")
        lines.append(f"ROI masks: {'yes' if self.has_roi else 'no'}")
        return lines


def _join(values: Sequence[int]) -> str:
    return ", ".join(str(v) for v in values) or "none"


def _tuple(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in values) + ")"


@dataclass(frozen=True)
class VerifyReport:
    """Everything :func:`verify_dataset` found.

    Attributes:
        path: The dataset path as given.
        problems: Every problem, dataset-level first, then per case, without duplicates.
        dataset: The loaded dataset (None when it could not be loaded at all).
        summary: A summary of the cases that read cleanly (None when unloadable).
        warnings: Worth knowing, no reason to stop (constant images, unused labels).
    """

    path: Path
    problems: tuple[Problem, ...]
    dataset: Dataset | None = None
    summary: DatasetSummary | None = field(default=None)
    warnings: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (the ``--json`` report)."""
        return {
            "path": str(self.path),
            "ok": self.ok,
            "format": self.dataset.format if self.dataset else None,
            "num_problems": len(self.problems),
            "problems": [p.to_dict() for p in self.problems],
            "warnings": [p.to_dict() for p in self.warnings],
            "summary": to_jsonable(self.summary) if self.summary else None,
        }


def verify_dataset(path: Path, *, num_workers: int = 1, cache: Path | None = None) -> VerifyReport:
    """Check a dataset (any supported format) and report every problem found.

    Args:
        path: Dataset folder, its dataset.json, or a CSV manifest.
        num_workers: Processes reading cases in parallel (1: in this process).
        cache: A verification cache file (``<work>/verify.json``): cases whose files match
            their cached signature are not read again, and the cache is rewritten.

    Returns:
        The report; ``report.ok`` is True when nothing is wrong. Never raises for bad data.
    """
    result = read_dataset(Path(path))
    problems = list(result.problems)
    dataset, summary, warnings = result.dataset, None, []
    if dataset is not None:
        cases = dataset.cases + dataset.test_cases
        if cache is None:
            records = _inspect_cases(cases, dataset, num_workers)
        else:
            records = _inspect_with_cache(cases, dataset, num_workers, cache, not problems)
        problems += [p for record in records for p in record.problems]
        warnings = [p for record in records for p in record.warnings]
        warnings += _label_warnings(dataset, records)
        summary = _summarise(dataset, records)
    report = VerifyReport(Path(path), tuple(dict.fromkeys(problems)), dataset, summary)
    return dataclasses.replace(report, warnings=tuple(dict.fromkeys(warnings)))


def _label_warnings(dataset: Dataset, records: Sequence[CaseRecord]) -> list[Problem]:
    """Label usage over the training cases, once every one of them read cleanly."""
    training = {c.case_id for c in dataset.cases}
    read = [r for r in records if r.case_id in training and r.shape is not None]
    if len(read) != len(training):
        return []
    found = [r.label_values for r in read]
    return check_label_usage(dataset.labels, found, source=dataset.source or dataset.root)


def _inspect_with_cache(
    cases: Sequence[Case], dataset: Dataset, num_workers: int, cache: Path, dataset_ok: bool
) -> list[CaseRecord]:
    expect = CaseExpectations.from_dataset(dataset)
    expectations = repr(expect)  # the frozen dataclass of everything a case is checked against
    reused, to_check, signatures = reusable(cases, load_verify_cache(cache), expectations)
    checked = {r.case_id: r for r in _inspect_cases(to_check, dataset, num_workers)}
    records = [reused.get(c.case_id) or checked[c.case_id] for c in cases]
    entries = {r.case_id: (signatures[r.case_id], r) for r in records}
    ok = dataset_ok and not any(r.problems for r in records)
    save_verify_cache(cache, entries, ok)
    return records


def verify_cases(cases: Sequence[Case], dataset: Dataset, num_workers: int = 1) -> list[Problem]:
    """Run the per-case checks on ``cases`` (e.g. unlabelled inputs of ``autoseg predict``).

    Args:
        cases: Cases to check; their channel count must match ``dataset``'s.
        dataset: Supplies the channel count and declared labels.
        num_workers: Processes reading cases in parallel (1: in this process).

    Returns:
        Every problem found, in case order, without duplicates.
    """
    records = _inspect_cases(tuple(cases), dataset, num_workers)
    return list(dict.fromkeys(p for record in records for p in record.problems))


def _inspect_cases(cases: Sequence[Case], dataset: Dataset, num_workers: int) -> list[CaseRecord]:
    expect = CaseExpectations.from_dataset(dataset)
    items = [(case, expect) for case in cases]
    return list(map_cases(_inspect_one, items, num_workers=num_workers, desc="verify"))


def _inspect_one(item: tuple[Case, CaseExpectations]) -> CaseRecord:
    """Worker: inspect one case, keep only small results (no arrays cross processes)."""
    case, expect = item
    inspection = inspect_case(case, expect)
    arrays = inspection.arrays
    if arrays is None:
        return CaseRecord(case.case_id, inspection.problems)
    values = () if arrays.label is None else tuple(int(v) for v in unique_values(arrays.label))
    geometry, warnings = arrays.geometry, inspection.warnings
    return CaseRecord(case.case_id, (), geometry.shape, geometry.spacing, values, warnings)


def _summarise(dataset: Dataset, records: Sequence[CaseRecord]) -> DatasetSummary:
    shapes = np.array([r.shape for r in records if r.shape is not None])
    spacings = np.array([r.spacing for r in records if r.spacing is not None])
    groups = {case.group or f"case:{case.case_id}" for case in dataset.cases}
    return DatasetSummary(
        name=dataset.name,
        format=dataset.format,
        num_cases=len(dataset.cases),
        num_test_cases=len(dataset.test_cases),
        channel_names=dataset.channel_names,
        labels=dict(dataset.labels),
        regions=dict(dataset.regions),
        label_values_found=tuple(sorted({v for r in records for v in r.label_values})),
        shape_range=(
            (tuple(int(v) for v in shapes.min(0)), tuple(int(v) for v in shapes.max(0)))
            if len(shapes)
            else None
        ),
        spacing_range=(
            (tuple(float(v) for v in spacings.min(0)), tuple(float(v) for v in spacings.max(0)))
            if len(spacings)
            else None
        ),
        has_roi=dataset.has_roi,
        num_groups=len(groups),
        ignore_label=dataset.ignore_label,
        regions_class_order=dataset.regions_class_order,
    )


def format_report(report: VerifyReport) -> str:
    """The human-readable summary printed on success (or after the problem lines)."""
    if report.ok and report.summary is not None:
        warned = f", {len(report.warnings)} warning(s)" if report.warnings else ""
        head = (
            f"{report.path}: no problems found{warned} ({report.summary.format} dataset "
            f"{report.summary.name!r})"
        )
        return "\n".join([head, *("  " + line for line in report.summary.lines())])
    cases = {p.case_id for p in report.problems if p.case_id is not None}
    return (
        f"{report.path}: {len(report.problems)} problem(s) found"
        f" ({len(cases)} case(s) affected); fix them and run 'autoseg verify' again"
    )
