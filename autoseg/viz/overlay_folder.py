"""``autoseg show`` over folders: one overlay PNG per case, as ``nnUNetv2_plot_overlay_pngs``.

The images are a folder in nnU-Net naming (``{case}_{XXXX}{ending}``; ``--channel`` picks
``XXXX``) or a dataset folder holding ``imagesTr/`` (then ``labelsTr/`` is the default
reference and ``dataset.json`` names the labels). Predictions and references are folders of
``{case}{ending}`` label maps, any supported ending. A dataset.json next to the images
folder names the labels unless ``--dataset-json`` is given. ``OUT/<case>.png`` is written
per case; a case whose label map is missing or wrong is reported in one line and the others
are still drawn.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from autoseg.data.file_endings import SUPPORTED_ENDINGS
from autoseg.errors import AutosegError, InputError
from autoseg.log import get_logger
from autoseg.parallel import map_cases
from autoseg.viz.overlays import label_names_from_dataset_json, render_overlay

__all__ = ["FolderOverlays", "render_folder_overlays"]

_log = get_logger(__name__)
_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


@dataclass(frozen=True)
class FolderOverlays:
    """What :func:`render_folder_overlays` drew: the PNG per case and the failures."""

    out_dir: Path
    written: Mapping[str, Path]
    failed: Mapping[str, str] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return 2 if self.failed else 0

    def describe(self) -> str:
        line = f"wrote {len(self.written)} overlay(s) to {self.out_dir}"
        if self.failed:
            line += f"; {len(self.failed)} FAILED ({', '.join(sorted(self.failed))})"
        return line


def _stem(path: Path) -> str | None:
    name = path.name
    if name.startswith("."):
        return None
    ending = next((e for e in SUPPORTED_ENDINGS if name.lower().endswith(e)), None)
    return None if ending is None else name[: -len(ending)]


def _label_maps(folder: Path) -> dict[str, Path]:
    """Case id -> label map file of a folder of ``{case}{ending}`` files."""
    if not folder.is_dir():
        raise InputError("expected a folder of label maps", path=folder)
    found = {}
    for path in sorted(folder.iterdir()):
        stem = _stem(path)
        if stem is not None and path.is_file():
            found[stem] = path
    return found


def _images(folder: Path, channel: int) -> dict[str, Path]:
    """Case id -> the ``channel``'s image of a folder in nnU-Net naming."""
    found = {}
    for path in sorted(folder.iterdir()):
        stem = _stem(path)
        match = None if stem is None else _CHANNEL.match(stem)
        if match is not None and int(match["channel"]) == channel:
            found[match["case"]] = path
    if not found:
        raise InputError(
            f"no images named {{case}}_{channel:04d}{{ending}} (channel {channel})", path=folder
        )
    return found


def _draw_one(job: tuple[str, Path, Path | None, Path | None, Path, dict[int, str]]) -> str:
    """Worker: draw one case; '' on success, else the one-line reason."""
    _, image, seg, ref, out, names = job
    try:
        render_overlay(image, out, seg=seg, ref=ref, label_names=names)
    except AutosegError as err:
        return str(err)
    return ""


def render_folder_overlays(
    images: Path,
    out_dir: Path,
    *,
    seg: Path | None = None,
    ref: Path | None = None,
    channel: int = 0,
    dataset_json: Path | None = None,
    num_workers: int = 1,
) -> FolderOverlays:
    """One overlay per case of a folder (see the module docstring).

    Raises:
        InputError: a folder that holds no image, a label folder that is not one, an
            ``out_dir`` that is a file.
    """
    images, out_dir = Path(images), Path(out_dir)
    if (images / "imagesTr").is_dir():  # a dataset folder, as nnUNetv2_plot_overlay_pngs
        if ref is None and (images / "labelsTr").is_dir():
            ref = images / "labelsTr"
        if dataset_json is None and (images / "dataset.json").is_file():
            dataset_json = images / "dataset.json"
        images = images / "imagesTr"
    if dataset_json is None and (images.parent / "dataset.json").is_file():
        dataset_json = images.parent / "dataset.json"  # e.g. imagesTs/ of a dataset folder
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("--out must be a folder when the image is a folder", path=out_dir)
    cases = _images(images, channel)
    names = {} if dataset_json is None else label_names_from_dataset_json(dataset_json)
    segs = None if seg is None else _label_maps(Path(seg))
    refs = None if ref is None else _label_maps(Path(ref))
    failed: dict[str, str] = {}
    jobs = []
    for case_id, image in cases.items():
        for what, found, folder in (("prediction", segs, seg), ("reference", refs, ref)):
            if found is not None and case_id not in found:
                failed[case_id] = f"{case_id}: no {what} {case_id}{{ending}} in {folder}"
        if case_id not in failed:
            label_paths = (
                None if segs is None else segs[case_id],
                None if refs is None else refs[case_id],
            )
            jobs.append((case_id, image, *label_paths, out_dir / f"{case_id}.png", names))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    results = map_cases(_draw_one, jobs, num_workers=num_workers, desc="overlays")
    for job, problem in zip(jobs, results):
        if problem:
            failed[job[0]] = problem
        else:
            written[job[0]] = job[4]
    for message in failed.values():
        _log.error("error: %s", message)
    return FolderOverlays(out_dir, written, failed)
