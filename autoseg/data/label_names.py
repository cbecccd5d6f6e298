"""Label names for display: ``lesion (1)`` rather than ``class 1``, and what is scored.

Built from a dataset.json's or a plan's ``labels`` (name -> value); list-valued region
entries are left out (see :mod:`autoseg.data.labels`). :func:`score_targets` lists what a
network's outputs are scored on (the foreground labels, or the regions of region-based
training), each with its display title, for tables, logs and pictures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autoseg.data.labels import is_label_value

__all__ = ["ScoreTarget", "display_label", "label_names", "score_targets"]


def label_names(labels: Mapping[str, Any]) -> dict[int, str]:
    """Label value -> name, from ``labels`` (name -> value, nnU-Net style)."""
    return {int(value): str(name) for name, value in labels.items() if is_label_value(value)}


def display_label(value: int, names: Mapping[int, str]) -> str:
    """``"lesion (1)"`` when the value has a name, else ``"label 1"``."""
    name = names.get(int(value))
    return f"{name} ({int(value)})" if name else f"label {int(value)}"


@dataclass(frozen=True)
class ScoreTarget:
    """One thing scored in evaluation: a label value or a region.

    Attributes:
        key: The ``target`` of metric tables: the label value as a string, or the region
            name.
        name: What a person reads: the label's name from dataset.json, or the region name.
        kind: ``"label"`` or ``"region"``.
        values: The label values it covers.
    """

    key: str
    name: str
    kind: str
    values: tuple[int, ...]

    @property
    def title(self) -> str:
        """``"Anterior (1)"`` for a named label, ``"label 1"`` without a name (as
        :func:`display_label`), the name of a region."""
        if self.kind == "region":
            return self.name
        return display_label(int(self.key), {int(self.key): self.name})


def score_targets(
    labels: Mapping[str, Any],
    regions: Mapping[str, Sequence[int]],
    *,
    region_based: bool = False,
    ignore_label: int | None = None,
) -> tuple[ScoreTarget, ...]:
    """What a network's outputs are scored on, in output order.

    Label-based: the foreground labels (not 0, not the ignore label), sorted by value.
    Region-based: the regions, in order (the network's output channels).
    """
    if region_based:
        return tuple(
            ScoreTarget(name, name, "region", tuple(int(v) for v in members))
            for name, members in regions.items()
        )
    names = label_names(labels)
    values = sorted(v for v in names if v != 0 and v != ignore_label)
    return tuple(ScoreTarget(str(v), names.get(v, ""), "label", (v,)) for v in values)
