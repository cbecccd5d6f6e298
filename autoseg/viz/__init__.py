"""autoseg.viz: pictures: overlays of images, predictions and references (``autoseg show``).

Training curves (``progress.png``) live with the training history, in
:mod:`autoseg.trainers.history`.

Matplotlib is imported inside the drawing functions (Agg canvas, no pyplot state).
"""

from __future__ import annotations

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
    "render_overlay",
]
