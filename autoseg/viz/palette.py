"""Colour-blind-safe colours (Okabe & Ito, 2008) shared by every picture autoseg draws."""

from __future__ import annotations

__all__ = ["OKABE_ITO", "label_colour"]

OKABE_ITO: tuple[str, ...] = (
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#009E73",  # bluish green
    "#F0E442",  # yellow
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
)
"""Okabe-Ito's palette without black (invisible on dark images): distinguishable with the
common colour-vision deficiencies."""


def label_colour(index: int) -> str:
    """The colour of the ``index``-th label (0-based), cycling after seven."""
    return OKABE_ITO[index % len(OKABE_ITO)]
