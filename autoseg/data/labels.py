"""The rule of dataset.json ``labels``: labels, regions, the ignore label, and their names.

nnU-Net v2 style. ``{"background": 0, "lesion": 1, "whole tumour": [1, 2]}`` declares the
labels 0 and 1 and the region "whole tumour" uniting labels 1 and 2. Every reader of a
dataset.json (the format readers, ``autoseg evaluate``, ``autoseg show``) splits its
``labels`` with these functions and reports what it rejects in its own terms.

Two nnU-Net conventions on top (:func:`parse_label_scheme`):

- **Ignore label**: an integer entry named ``ignore`` is no class. It must be the highest
  label value; voxels carrying it are left out of the loss, of the sampling targets, of
  the pseudo-Dice and of every evaluation, and it is never predicted.
- **Region-based training**: when dataset.json also holds ``regions_class_order`` (one
  label value per region), every non-background entry is a region (an integer ``v`` being
  the region ``[v]``); the networks then predict one sigmoid per region, and a prediction
  paints the label ``regions_class_order[i]`` wherever region ``i`` is predicted, in that
  order, later regions over earlier ones (:func:`labels_from_probabilities`). The label
  values are the values the regions unite; each is named after the region that paints it.
  Without ``regions_class_order``, list-valued entries are regions for evaluation only and
  the integer entries are the trained labels.

Display names (``lesion (1)``) and what a plan's outputs are scored on live in
:mod:`autoseg.data.label_names`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeGuard

import numpy as np

__all__ = [
    "IGNORE_NAME",
    "LabelScheme",
    "is_label_value",
    "is_region_value",
    "label_entries",
    "labels_from_probabilities",
    "parse_label_scheme",
    "region_entries",
]

IGNORE_NAME = "ignore"
"""The label name nnU-Net reserves for voxels without annotation."""


def is_label_value(value: object) -> TypeGuard[int]:
    """True for an integer label value (booleans are not labels)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_region_value(value: object) -> bool:
    """True for a region: a non-empty list of integer label values."""
    return isinstance(value, list) and bool(value) and all(is_label_value(v) for v in value)


def label_entries(labels: Mapping[object, object]) -> dict[str, int]:
    """The integer entries of ``labels``: name -> value, in the file's order."""
    return {str(name): int(value) for name, value in labels.items() if is_label_value(value)}


def region_entries(labels: Mapping[object, object]) -> dict[str, list[object]]:
    """The list-valued entries of ``labels`` (regions, not yet checked): name -> the list."""
    return {str(name): value for name, value in labels.items() if isinstance(value, list)}


@dataclass(frozen=True)
class LabelScheme:
    """What a dataset's ``labels`` (and ``regions_class_order``) declare.

    Attributes:
        labels: Label name -> value: every value a label map may hold (background 0 and
            the ignore label included), in the file's order, then derived names.
        regions: Region name -> the sorted label values it unites, in the file's order.
        regions_class_order: For region-based training, the label value each region
            paints (one per region, in ``regions`` order); None for label-based training.
        ignore_label: The value of the ``ignore`` label, or None.
    """

    labels: dict[str, int]
    regions: dict[str, tuple[int, ...]] = field(default_factory=dict)
    regions_class_order: tuple[int, ...] | None = None
    ignore_label: int | None = None


def _members(value: int | list[int]) -> tuple[int, ...]:
    """The sorted label values of an integer label or a region list."""
    return (int(value),) if isinstance(value, int) else tuple(sorted({int(v) for v in value}))


def parse_label_scheme(
    raw: Mapping[object, object], regions_class_order: object = None
) -> tuple[LabelScheme, list[str]]:
    """Split nnU-Net style ``labels`` into labels, regions and the ignore label.

    Args:
        raw: The ``labels`` object (name -> integer or list of integers).
        regions_class_order: dataset.json's ``regions_class_order`` (None when absent);
            given, it asks for region-based training.

    Returns:
        ``(scheme, problems)``: what could be read, and one message per thing that is
        wrong (the caller says where). Values named only inside evaluation regions get
        the name ``label_<v>``.
    """
    problems: list[str] = []
    entries: dict[str, tuple[int, ...]] = {}
    plain: dict[str, int] = {}
    for name, value in raw.items():
        if is_label_value(value):
            plain[str(name)] = int(value)
            entries[str(name)] = (int(value),)
        elif is_region_value(value):
            entries[str(name)] = _members(value)  # type: ignore[arg-type]
        else:
            problems.append(
                f"label {name!r} must be an integer or a list of integers (a region), "
                f"got {value!r:.60}"
            )
    ignore = _ignore_label(raw, entries, problems)
    if regions_class_order is None:
        regions = {n: v for n, v in entries.items() if n not in plain}
        labels = dict(plain)
        named = set(labels.values())
        for value in sorted({v for values in regions.values() for v in values} - named):
            labels["background" if value == 0 else f"label_{value}"] = value
        return LabelScheme(labels, regions, None, ignore), problems
    return _region_scheme(entries, plain, regions_class_order, ignore, problems)


def _ignore_label(
    raw: Mapping[object, object], entries: Mapping[str, tuple[int, ...]], problems: list[str]
) -> int | None:
    if IGNORE_NAME not in raw:
        return None
    value = raw[IGNORE_NAME]
    if not is_label_value(value):
        problems.append(f"the 'ignore' label must be one integer value, got {value!r:.40}")
        return None
    others = {v for name, values in entries.items() if name != IGNORE_NAME for v in values}
    if value <= 0 or (others and value <= max(others)):
        problems.append(
            f"the 'ignore' label must have the highest label value; got ignore={value} with "
            f"other values {sorted(others)} (declare it as {max(others, default=0) + 1})"
        )
    return int(value)


def _region_scheme(
    entries: Mapping[str, tuple[int, ...]],
    plain: Mapping[str, int],
    order_raw: object,
    ignore: int | None,
    problems: list[str],
) -> tuple[LabelScheme, list[str]]:
    regions = {
        name: values
        for name, values in entries.items()
        if name != IGNORE_NAME and values != (0,) and not (name in plain and plain[name] == 0)
    }
    background = {n: 0 for n, v in plain.items() if v == 0}
    if not any(len(v) > 1 for v in regions.values()):
        problems.append(
            "'regions_class_order' is given but no label is a region (a list of two or more "
            'label values, e.g. "whole tumour": [1, 2, 3])'
        )
    values = sorted({v for members in regions.values() for v in members})
    for name, members in regions.items():
        if 0 in members or (ignore is not None and ignore in members):
            problems.append(
                f"region {name!r} {list(members)} must not hold background 0 or the ignore label"
            )
    order = _class_order(order_raw, len(regions), values, problems)
    labels: dict[str, int] = dict(background or {"background": 0})
    painters: dict[int, str] = {}
    for name, value in zip(regions, order or ()):
        painters.setdefault(value, name)
    for value in values:
        if value != 0:
            labels[painters.get(value, f"label_{value}")] = value
    if ignore is not None:
        labels[IGNORE_NAME] = ignore
    return LabelScheme(labels, dict(regions), order, ignore), problems


def _class_order(
    raw: object, num_regions: int, values: Sequence[int], problems: list[str]
) -> tuple[int, ...] | None:
    if not (isinstance(raw, list) and all(is_label_value(v) for v in raw)):
        problems.append(f"'regions_class_order' must be a list of label values, got {raw!r:.60}")
        return None
    order = tuple(int(v) for v in raw)
    if len(order) != num_regions:
        problems.append(
            f"'regions_class_order' must hold one label value per region ({num_regions}), "
            f"got {len(order)}: {list(order)}"
        )
        return None
    unknown = sorted(set(order) - set(values) - {0})
    if unknown or 0 in order:
        problems.append(
            f"'regions_class_order' {list(order)} must paint label values the regions use "
            f"({list(values)}), not {sorted(set(unknown) | ({0} & set(order)))}"
        )
        return None
    return order


def labels_from_probabilities(
    probabilities: np.ndarray, regions_class_order: Sequence[int] | None = None
) -> np.ndarray:
    """The label map of class or region probabilities (K×Z×Y×X, float).

    Without ``regions_class_order``: the argmax over the classes (class k is label k; ties
    go to the lower class). With it: 0 everywhere, then label ``regions_class_order[i]``
    wherever region ``i``'s probability exceeds 0.5, region after region.

    Returns:
        uint8 Z×Y×X (int16 beyond 256 labels).
    """
    if regions_class_order is None:
        dtype = np.uint8 if probabilities.shape[0] <= 256 else np.int16
        return np.argmax(probabilities, axis=0).astype(dtype)
    if len(regions_class_order) != probabilities.shape[0]:
        raise ValueError(
            f"{probabilities.shape[0]} region probabilities but {len(regions_class_order)} "
            "entries in regions_class_order"
        )
    dtype = np.uint8 if max(regions_class_order, default=0) < 256 else np.int16
    labels = np.zeros(probabilities.shape[1:], dtype=dtype)
    for channel, value in zip(probabilities, regions_class_order):
        labels[channel > 0.5] = value
    return labels
