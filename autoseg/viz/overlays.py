"""Overlay pictures (``autoseg show``): three orthogonal slices with label outlines.

The slices go through the largest foreground component (26-connectivity) of the reference
if one is given and non-empty, else of the prediction, else through the image centre.

Orientation convention: the image's direction matrix decides which array axis runs
closest to which patient axis (RAS+ world coordinates, see :mod:`autoseg.data.geometry`;
for oblique images the closest axes, matched one to one). The *axial* panel is the slice across the
superior-inferior axis, *coronal* across anterior-posterior, *sagittal* across left-right.
Panels are shown in the radiological convention: axial with anterior up and the patient's
right on the screen's left; coronal with superior up and the patient's right on the left;
sagittal with superior up and anterior on the left. Each pixel is drawn with the physical
aspect of its voxel (row spacing / column spacing), so anisotropic data look right.

The image is grey with a robust window (0.5th-99.5th percentile); the reference is drawn as
translucent filled areas and the prediction as solid outlines, one colour-blind-safe colour
per label value, named in a legend (:mod:`autoseg.viz.overlay_figure`). The PNG is written
atomically.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from autoseg.atomic import atomic_path
from autoseg.data.geometry import Geometry
from autoseg.data.imageio import read_image
from autoseg.data.labels import label_entries
from autoseg.errors import InputError
from autoseg.log import get_logger
from autoseg.strict import load_json
from autoseg.viz.overlay_figure import draw_overlay

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

_log = get_logger(__name__)
_VIEW_AXES = {"axial": 2, "coronal": 1, "sagittal": 0}  # world axis each view slices across
_AXIS_NAMES = "ZYX"
_ENDS = (("L", "R"), ("P", "A"), ("I", "S"))  # (negative end, positive end) of world x, y, z


@dataclass(frozen=True)
class ViewLayout:
    """One panel: which array axis is sliced where, and how the slice is shown.

    Attributes:
        name: "axial", "coronal" or "sagittal".
        axis: Array axis the slice is taken across (0 = Z, 1 = Y, 2 = X).
        index: Slice index along ``axis``.
        row_axis: Array axis shown top to bottom.
        col_axis: Array axis shown left to right.
        flip_rows: Whether the row axis is reversed (index 0 at the bottom).
        flip_cols: Whether the column axis is reversed (index 0 on the right).
        aspect: Displayed pixel height / width = row spacing / column spacing (mm / mm).
        ends: Patient directions at the (top, bottom, left, right) edges, e.g. "A", "P".
    """

    name: str
    axis: int
    index: int
    row_axis: int
    col_axis: int
    flip_rows: bool
    flip_cols: bool
    aspect: float
    ends: tuple[str, str, str, str]

    def extract(self, volume: np.ndarray) -> np.ndarray:
        """The panel's 2-D slice of a (Z, Y, X) volume, rows and columns as displayed."""
        plane = np.take(volume, self.index, axis=self.axis)
        if self.row_axis > self.col_axis:
            plane = plane.T
        if self.flip_rows:
            plane = plane[::-1, :]
        if self.flip_cols:
            plane = plane[:, ::-1]
        return plane


@dataclass(frozen=True)
class OverlayLayout:
    """What :func:`render_overlay` drew.

    Attributes:
        path: The PNG written.
        centre: Voxel (Z, Y, X) all three slices pass through.
        centre_source: "reference", "prediction" or "image centre".
        component_voxels: Voxels of the largest component (0 for the image centre).
        views: The axial, coronal and sagittal panels.
        legend: Legend entries: each label by name, then the reference's and the
            prediction's style.
        window: Grey-level window (low, high) in image units.
    """

    path: Path
    centre: tuple[int, int, int]
    centre_source: str
    component_voxels: int
    views: tuple[ViewLayout, ...]
    legend: tuple[str, ...]
    window: tuple[float, float]

    def describe(self) -> str:
        """One line: the file and the slices."""
        slices = ", ".join(f"{v.name} {_AXIS_NAMES[v.axis]}={v.index}" for v in self.views)
        where = (
            f"largest {self.centre_source} component ({self.component_voxels} voxels)"
            if self.component_voxels
            else self.centre_source
        )
        return f"wrote {self.path} ({slices}; through the {where})"


def _world_axes(geometry: Geometry) -> tuple[list[int], list[int]]:
    """Per array axis (Z, Y, X): the closest world axis (0 x, 1 y, 2 z) and the sign (+1 when
    the index increases toward R, A or S). Axes are matched one-to-one (best permutation)."""
    direction = np.abs(geometry.direction_matrix)  # [world, voxel axis i/j/k]
    best = max(
        itertools.permutations(range(3)),
        key=lambda p: sum(direction[p[a], 2 - a] for a in range(3)),
    )
    signs = [1 if geometry.direction_matrix[best[a], 2 - a] >= 0 else -1 for a in range(3)]
    return list(best), signs


def anatomical_views(geometry: Geometry, centre: Sequence[int]) -> tuple[ViewLayout, ...]:
    """The axial, coronal and sagittal panels through ``centre`` (Z, Y, X voxel).

    Args:
        geometry: The image geometry (direction decides the axes, spacing the aspect).
        centre: Voxel index (Z, Y, X) the three slices pass through.
    """
    world, signs = _world_axes(geometry)
    axis_of = {w: a for a, w in enumerate(world)}
    x, y, z = axis_of[0], axis_of[1], axis_of[2]
    panels = {"axial": (y, x), "coronal": (z, x), "sagittal": (z, y)}  # (rows, columns)
    views = []
    for name, (rows, cols) in panels.items():
        # Row 0 is the positive end (A or S), column 0 too (R, or A in the sagittal panel):
        # an axis whose index increases toward its positive end is reversed.
        axis = axis_of[_VIEW_AXES[name]]
        negative_row, positive_row = _ENDS[world[rows]]
        negative_col, positive_col = _ENDS[world[cols]]
        views.append(
            ViewLayout(
                name=name,
                axis=axis,
                index=int(centre[axis]),
                row_axis=rows,
                col_axis=cols,
                flip_rows=signs[rows] > 0,
                flip_cols=signs[cols] > 0,
                aspect=geometry.spacing[rows] / geometry.spacing[cols],
                ends=(positive_row, negative_row, positive_col, negative_col),
            )
        )
    return tuple(views)


def largest_component_centre(labels: np.ndarray) -> tuple[tuple[int, int, int], int] | None:
    """The voxel of the largest foreground component (26-connectivity) nearest its centroid.

    Args:
        labels: Label map (Z, Y, X); every non-zero value is foreground.

    Returns:
        ``((z, y, x), component voxels)``, or None when there is no foreground.
    """
    components, count = ndimage.label(labels != 0, structure=np.ones((3, 3, 3), dtype=bool))
    if count == 0:
        return None
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    largest = int(np.argmax(sizes))
    voxels = np.argwhere(components == largest)
    nearest = voxels[np.argmin(((voxels - voxels.mean(axis=0)) ** 2).sum(axis=1))]
    return (int(nearest[0]), int(nearest[1]), int(nearest[2])), int(sizes[largest])


def intensity_window(
    image: np.ndarray, low: float = 0.5, high: float = 99.5
) -> tuple[float, float]:
    """Robust grey-level window: the ``low`` and ``high`` percentiles of the finite voxels
    (widened to a non-empty range for constant images)."""
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(finite, [low, high]))
    if hi <= lo:
        lo, hi = float(finite.min()), float(finite.max())
    return (lo, hi) if hi > lo else (lo - 0.5, lo + 0.5)


@dataclass(frozen=True)
class OverlayVolumes:
    """The checked arrays of an overlay: image (Z, Y, X) float, label maps (Z, Y, X) int."""

    image: np.ndarray
    geometry: Geometry
    seg: np.ndarray | None
    ref: np.ndarray | None


def _read_labels(path: Path, geometry: Geometry, what: str) -> np.ndarray:
    array, other = read_image(path)
    if array.ndim != 3:
        raise InputError(f"the {what} must be a 3D label map, got shape {array.shape}", path=path)
    if tuple(array.shape) != tuple(geometry.shape):
        raise InputError(
            f"the {what}'s shape (Z, Y, X) {tuple(array.shape)} differs from the image's "
            f"{tuple(geometry.shape)}",
            path=path,
        )
    integral = np.issubdtype(array.dtype, np.integer)
    if not integral and not (np.all(np.isfinite(array)) and np.all(array == np.round(array))):
        raise InputError(f"the {what} holds non-integer values; expected labels", path=path)
    for problem in geometry.differences(other, spacing_tol=1e-2, origin_tol_mm=0.1):
        _log.warning("%s: %s geometry differs from the image's: %s", path, what, problem)
    return np.asarray(array).astype(np.int64)


def load_overlay_volumes(
    image: Path, *, seg: Path | None = None, ref: Path | None = None, channel: int = 0
) -> OverlayVolumes:
    """Read and check the image (one channel of a 3D or 4D file) and the label maps.

    Raises:
        InputError: a channel out of range, a label map that is not 3D, has another shape
            than the image or non-integer values (the message names the file).
        DatasetError: an unreadable file.
    """
    array, geometry = read_image(image)
    channels = 1 if array.ndim == 3 else array.shape[0]
    if not 0 <= channel < channels:
        raise InputError(
            f"--channel {channel} out of range: the image has {channels} channel(s) "
            f"(0..{channels - 1})",
            path=image,
        )
    volume = array if array.ndim == 3 else array[channel]
    return OverlayVolumes(
        np.asarray(volume, dtype=np.float32),
        geometry,
        None if seg is None else _read_labels(Path(seg), geometry, "prediction"),
        None if ref is None else _read_labels(Path(ref), geometry, "reference"),
    )


def label_names_from_dataset_json(path: Path | str) -> dict[int, str]:
    """Label value -> name from a dataset.json's ``labels`` (name -> integer; list-valued
    region entries are skipped).

    Raises:
        InputError: if the file is missing, not JSON or has no ``labels`` object.
    """
    path = Path(path)
    try:
        data = load_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read the dataset.json: {err}", path=path) from None
    labels = data.get("labels") if isinstance(data, dict) else None
    if not isinstance(labels, dict):
        raise InputError("expected a JSON object with a 'labels' mapping", path=path)
    return {value: name for name, value in label_entries(labels).items()}


def _centre(volumes: OverlayVolumes) -> tuple[tuple[int, int, int], str, int]:
    for name, labels in (("reference", volumes.ref), ("prediction", volumes.seg)):
        found = None if labels is None else largest_component_centre(labels)
        if found is not None:
            return found[0], name, found[1]
    shape = volumes.geometry.shape
    return (shape[0] // 2, shape[1] // 2, shape[2] // 2), "image centre", 0


def render_overlay(
    image: Path | str,
    out: Path | str,
    *,
    seg: Path | str | None = None,
    ref: Path | str | None = None,
    channel: int = 0,
    label_names: Mapping[int, str] | None = None,
) -> OverlayLayout:
    """Draw the axial, coronal and sagittal slices with outlines into a PNG (see module doc).

    Args:
        image: Image file (NIfTI, NRRD, MHA; 3D, or 4D with channels first in array order).
        out: Output ``.png`` path (written atomically).
        seg: Predicted label map (same shape as the image), drawn as outlines.
        ref: Reference label map, drawn as translucent filled areas.
        channel: Channel of a 4D image (0-based).
        label_names: Label value -> name for the legend (default "label <value>").

    Returns:
        The layout drawn (centre, panels, legend).

    Raises:
        InputError: bad inputs (see :func:`load_overlay_volumes`) or ``out`` not a ``.png``.
    """
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise InputError(
            "the overlay is written as PNG; give an --out path ending in .png", path=out
        )
    volumes = load_overlay_volumes(
        Path(image),
        seg=None if seg is None else Path(seg),
        ref=None if ref is None else Path(ref),
        channel=channel,
    )
    centre, source, voxels = _centre(volumes)
    views = anatomical_views(volumes.geometry, centre)
    window = intensity_window(volumes.image)
    legend = _draw(volumes, views, window, out, dict(label_names or {}), Path(image).name)
    return OverlayLayout(out, centre, source, voxels, views, legend, window)


def _label_values(*maps: np.ndarray | None) -> list[int]:
    values: set[int] = set()
    for labels in maps:
        if labels is not None:
            values.update(int(v) for v in np.unique(labels) if v != 0)
    return sorted(values)


def _draw(
    volumes: OverlayVolumes,
    views: Sequence[ViewLayout],
    window: tuple[float, float],
    out: Path,
    names: dict[int, str],
    title: str,
) -> tuple[str, ...]:
    def planes(labels: np.ndarray | None) -> list[np.ndarray | None]:
        return [None if labels is None else view.extract(labels) for view in views]

    figure, legend = draw_overlay(
        [view.extract(volumes.image) for view in views],
        planes(volumes.ref),
        planes(volumes.seg),
        [
            (f"{view.name}  ({_AXIS_NAMES[view.axis]} = {view.index})", view.aspect, view.ends)
            for view in views
        ],
        window=window,
        values=_label_values(volumes.ref, volumes.seg),
        names=names,
        title=f"{title}  (window {window[0]:.4g} .. {window[1]:.4g})",
    )
    with atomic_path(out) as tmp:
        figure.savefig(tmp, format="png")
    return legend
