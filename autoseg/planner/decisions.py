"""Why each candidate configuration was or was not planned (``plans.json``: ``decisions``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from autoseg.errors import PlansError
from autoseg.strict import check_keys

__all__ = ["CANDIDATES", "PlanDecision", "decisions_from_dict", "decisions_to_dict"]

CANDIDATES = ("unet3d", "unet2d", "unet3d_lowres", "unet3d_cascade", "deepmedic")
"""Every configuration the planner considers, in the order plans.json lists them."""


@dataclass(frozen=True)
class PlanDecision:
    """One candidate's outcome.

    Attributes:
        planned: The configuration is in ``configurations``.
        reason: Why, in a sentence with the figures the rule looked at.
    """

    planned: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"planned": self.planned, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: Any) -> PlanDecision:
        check_keys("decision", data, ("planned", "reason"), PlansError)
        return cls(planned=bool(data["planned"]), reason=str(data["reason"]))


def decisions_to_dict(decisions: Mapping[str, PlanDecision]) -> dict[str, Any]:
    """Plain-JSON form."""
    return {name: d.to_dict() for name, d in decisions.items()}


def decisions_from_dict(data: Any) -> dict[str, PlanDecision]:
    """Strict inverse of :func:`decisions_to_dict`.

    Raises:
        PlansError: when it is not an object of decisions.
    """
    if not isinstance(data, dict):
        raise PlansError(f"plans `decisions` must be an object, got {data!r}")
    return {str(k): PlanDecision.from_dict(v) for k, v in data.items()}
