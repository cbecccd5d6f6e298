"""autoseg.viz: pictures: overlays of predictions (``autoseg show``) and training curves.

Matplotlib is imported inside the drawing functions (Agg canvas, no pyplot state).
"""

from __future__ import annotations

from autoseg.viz.curves import plot_progress
from autoseg.viz.overlays import (
    OverlayLayout,
    ViewLayout,
    anatomical_views,
    intensity_window,
    label_names_from_dataset_json,
    largest_component_centre,
    load_overlay_volumes,
    render_overlay,
)

__all__ = [
    "OverlayLayout",
    "ViewLayout",
    "anatomical_views",
    "intensity_window",
    "label_names_from_dataset_json",
    "largest_component_centre",
    "load_overlay_volumes",
    "plot_progress",
    "render_overlay",
]
