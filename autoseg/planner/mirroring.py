"""Which axes to mirror: every axis, except one along which two classes keep their order.

Mirroring is the cheapest augmentation and, at test time, the usual 8-fold ensemble. It
assumes a mirrored image is as plausible as the original. That fails when the labels say
*where* a structure is: left and right kidneys, the head and tail of the hippocampus, the
upper and lower pole of an organ. Mirrored along such an axis, an image shows the classes
the wrong way round, a layout no training case has, and the network must learn to tell the
classes apart without their position (nnU-Net mirrors every axis and leaves this to the
user). The fingerprint records each class's centre of mass per case; along an axis where
one class lies before another in nearly every case that holds both, this module drops the
axis from the mirror axes of training and of test-time mirroring.

The rule is measured in the arrays' own orientation, which the fingerprint, preprocessing
and prediction share (autoseg does not reorient). Training cases stored in mixed
orientations show no consistent order, so every axis stays mirrored for them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from autoseg.planner.fingerprint import CaseFingerprint
from autoseg.planner.heuristics import PlannerHeuristics

__all__ = ["AXIS_NAMES", "ClassOrder", "class_orders", "mirror_axes_for"]

AXIS_NAMES = ("Z", "Y", "X")
"""Array axes 0, 1, 2 by name."""


@dataclass(frozen=True)
class ClassOrder:
    """Class ``first`` lies before class ``second`` along ``axis`` (a smaller array index)
    in ``ordered`` of the ``cases`` that hold both."""

    axis: int
    first: int
    second: int
    ordered: int
    cases: int

    def describe(self, names: Mapping[int, str]) -> str:
        """E.g. 'Posterior before Anterior along Y in 130 of 130 cases'."""
        first = names.get(self.first, str(self.first))
        second = names.get(self.second, str(self.second))
        return (
            f"{first} before {second} along {AXIS_NAMES[self.axis]} "
            f"in {self.ordered} of {self.cases} cases"
        )


def class_orders(
    cases: Sequence[CaseFingerprint],
    heuristics: PlannerHeuristics,
    *,
    ignore: Sequence[int] = (),
) -> list[ClassOrder]:
    """Every (axis, class pair) whose order holds in at least ``mirror_order_fraction`` of
    the cases holding both classes, and in at least ``mirror_order_min_cases`` cases.

    A tie (equal centres along the axis) counts against the order.
    """
    labels = sorted({v for c in cases for v in c.class_centroids} - set(ignore))
    found = []
    for axis in range(3):
        for i, a in enumerate(labels):
            for b in labels[i + 1 :]:
                pairs = [
                    (c.class_centroids[a][axis], c.class_centroids[b][axis])
                    for c in cases
                    if a in c.class_centroids and b in c.class_centroids
                ]
                a_first = sum(pa < pb for pa, pb in pairs)
                b_first = sum(pb < pa for pa, pb in pairs)
                ordered, first, second = max((a_first, a, b), (b_first, b, a))
                if (
                    ordered >= heuristics.mirror_order_min_cases
                    and ordered >= heuristics.mirror_order_fraction * len(pairs)
                ):
                    found.append(ClassOrder(axis, first, second, ordered, len(pairs)))
    return found


def mirror_axes_for(candidates: Sequence[int], orders: Sequence[ClassOrder]) -> tuple[int, ...]:
    """``candidates`` without the axes some class order holds along."""
    fixed = {o.axis for o in orders}
    return tuple(a for a in candidates if a not in fixed)
