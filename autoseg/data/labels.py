"""The rule of dataset.json ``labels``: an integer names a label, a list of integers a region.

nnU-Net v2 style: ``{"background": 0, "lesion": 1, "whole tumour": [1, 2]}`` declares the
labels 0 and 1 and the region "whole tumour" uniting labels 1 and 2. Every reader of a
dataset.json (the format readers, ``autoseg evaluate``, ``autoseg show``) splits its
``labels`` with these functions and reports what it rejects in its own terms.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeGuard

__all__ = ["is_label_value", "is_region_value", "label_entries", "region_entries"]


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
