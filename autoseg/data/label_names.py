"""Label names for display in pictures: ``lesion (1)`` rather than ``class 1``.

Built from a dataset.json's or a plan's ``labels`` (name -> value); list-valued region
entries are left out (see :mod:`autoseg.data.labels`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autoseg.data.labels import is_label_value

__all__ = ["display_label", "label_names"]


def label_names(labels: Mapping[str, Any]) -> dict[int, str]:
    """Label value -> name, from ``labels`` (name -> value, nnU-Net style)."""
    return {int(value): str(name) for name, value in labels.items() if is_label_value(value)}


def display_label(value: int, names: Mapping[int, str]) -> str:
    """``"lesion (1)"`` when the value has a name, else ``"label 1"``."""
    name = names.get(int(value))
    return f"{name} ({int(value)})" if name else f"label {int(value)}"
