"""Folders of predictions: ensemble them (``autoseg ensemble``) and postprocess them
(``autoseg apply-postprocessing``), as nnU-Net's ``nnUNetv2_ensemble`` and
``nnUNetv2_apply_postprocessing`` do.

**Ensembling.** Every input folder holds, per case, ``<case>.npz`` (key ``probabilities``,
K×Z×Y×X softmax in the original geometry, as ``autoseg predict --save-probabilities`` and
the folds' ``validation/`` write them) and the case's label map ``<case><ending>``, whose
header the output copies. Every folder must hold the same cases. A case's ensemble is the
argmax of the mean of its softmax maps (ties go to the lower label), written to
``OUTPUT/<case><ending>``; ``save_probabilities`` also writes the mean as ``<case>.npz``
(float16). An optional postprocessing rule is applied to the labels. Predictions of
region-based training (``regions_class_order`` given) hold region sigmoids: their mean is
thresholded at 0.5 and painted in that order
(:func:`~autoseg.data.labels.labels_from_probabilities`).

**Postprocessing.** The rule is find-best's largest-connected-component rule per label: a
``best.json`` (its ``postprocessing``) or a JSON object ``{"1": true, "2": false}``. Every
label map of the input folder is rewritten into OUTPUT with the rule applied, its header
copied bit for bit.

Cases whose output exists are skipped unless ``overwrite``. A case that fails is reported
in one line and the others still run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autoseg.atomic import atomic_path
from autoseg.data.file_endings import SUPPORTED_ENDINGS
from autoseg.data.imageio import read_image, write_image
from autoseg.data.labels import labels_from_probabilities
from autoseg.ensembling.postprocessing import apply_postprocessing
from autoseg.errors import AutosegError, InputError
from autoseg.log import get_logger
from autoseg.parallel import map_cases

__all__ = [
    "FolderReport",
    "apply_postprocessing_to_folder",
    "ensemble_folders",
    "load_postprocessing_rule",
]

_log = get_logger(__name__)


@dataclass(frozen=True)
class FolderReport:
    """What a folder command did."""

    what: str
    output: Path
    written: tuple[str, ...]
    skipped: tuple[str, ...] = ()
    failed: Mapping[str, str] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """0 when every case was written or skipped, 2 when any failed."""
        return 2 if self.failed else 0

    def summary(self) -> str:
        parts = [f"{self.what} {len(self.written)} case(s)"]
        if self.skipped:
            parts.append(f"skipped {len(self.skipped)} with existing output (--overwrite redoes)")
        if self.failed:
            parts.append(f"{len(self.failed)} FAILED ({', '.join(sorted(self.failed))})")
        return f"{', '.join(parts)} -> {self.output}"


def _label_maps(folder: Path) -> dict[str, Path]:
    """Case id -> label map of a folder (hidden and non-image files ignored)."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        name = path.name
        ending = next((e for e in SUPPORTED_ENDINGS if name.lower().endswith(e)), None)
        if ending is not None and not name.startswith(".") and path.is_file():
            found[name[: -len(ending)]] = path
    return found


def _check_folder(folder: Path) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("input folder not found", path=folder)
    return folder


def load_postprocessing_rule(path: Path | str) -> dict[int, bool]:
    """The rule of a best.json (its ``postprocessing``) or of a ``{"1": true}`` JSON file.

    Raises:
        InputError: if the file is missing, not JSON, or not such a mapping.
    """
    path = Path(path)
    if not path.is_file():
        hint = "; run 'autoseg find-best' first" if path.name == "best.json" else ""
        raise InputError(f"postprocessing rule not found{hint}", path=path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read the postprocessing rule: {err}", path=path) from None
    if isinstance(data, dict) and isinstance(data.get("postprocessing"), dict):
        data = data["postprocessing"]  # a best.json
    ok = isinstance(data, dict) and all(
        str(k).isdigit() and int(k) > 0 and isinstance(v, bool) for k, v in data.items()
    )
    if not ok:
        raise InputError(
            'expected a best.json or a JSON object of label -> true/false, e.g. {"1": true, '
            '"2": false}',
            path=path,
        )
    return {int(k): bool(v) for k, v in data.items()}


def _read_probabilities(path: Path, case_id: str) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "probabilities" not in npz.files:
                raise InputError(
                    f"no 'probabilities' array (found {npz.files})", case_id=case_id, path=path
                )
            return np.asarray(npz["probabilities"], dtype=np.float32)
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read probabilities: {err}", case_id=case_id, path=path) from None


def _ensemble_case(job: tuple[Any, ...]) -> str:
    """Worker: ensemble one case; '' on success, else the one-line reason."""
    case_id, npz_paths, header, out, out_npz, rule, order = job
    try:
        _, geometry = read_image(header)
        total: np.ndarray | None = None
        for path in npz_paths:
            probabilities = _read_probabilities(path, case_id)
            if probabilities.ndim != 4 or tuple(probabilities.shape[1:]) != geometry.shape:
                raise InputError(
                    f"probabilities have shape {tuple(probabilities.shape)}; expected "
                    f"K x {tuple(geometry.shape)} (the label map's Z, Y, X)",
                    case_id=case_id,
                    path=path,
                )
            if total is not None and total.shape != probabilities.shape:
                raise InputError(
                    f"probabilities have {probabilities.shape[0]} classes, the first folder's "
                    f"{total.shape[0]}",
                    case_id=case_id,
                    path=path,
                )
            total = probabilities if total is None else total + probabilities
        assert total is not None
        if order is not None:
            labels = labels_from_probabilities(total / len(npz_paths), order)
        else:
            labels = np.argmax(total, axis=0).astype(
                np.uint8 if total.shape[0] <= 256 else np.int16
            )
        if rule:
            labels = apply_postprocessing(labels, rule)
        if out_npz is not None:
            mean = (total / len(npz_paths)).astype(np.float16)
            with atomic_path(out_npz) as tmp, open(tmp, "wb") as handle:
                np.savez_compressed(handle, probabilities=mean)
        write_image(out, labels, geometry, reference=header)
    except AutosegError as err:
        return str(err)
    return ""


def _run(
    what: str,
    jobs: list[tuple[Any, ...]],
    worker: Any,
    output: Path,
    num_workers: int,
    skipped: Sequence[str],
    failed: dict[str, str],
) -> FolderReport:
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for job, problem in zip(jobs, map_cases(worker, jobs, num_workers=num_workers, desc=what)):
        if problem:
            failed[job[0]] = problem
            _log.error("error: %s", problem)
        else:
            written.append(job[0])
    return FolderReport(what, output, tuple(written), tuple(skipped), failed)


def ensemble_folders(
    inputs: Sequence[Path],
    output: Path,
    *,
    save_probabilities: bool = False,
    postprocessing: Mapping[int, bool] | None = None,
    overwrite: bool = False,
    num_workers: int = 1,
    regions_class_order: Sequence[int] | None = None,
) -> FolderReport:
    """Average the saved softmax of several prediction folders (see the module docstring);
    with ``regions_class_order``, their region sigmoids (thresholded and painted).

    Raises:
        InputError: fewer than two folders, a missing folder, an output that is one of the
            inputs, folders that do not hold the same cases (the message lists them), or no
            ``.npz`` at all.
    """
    folders = [_check_folder(f) for f in inputs]
    if len(folders) < 2:
        raise InputError("give at least two folders to ensemble (-i DIR1 DIR2 ...)")
    output = Path(output)
    if any(output.resolve() == f.resolve() for f in folders):
        raise InputError("OUTPUT must not be one of the input folders", path=output)
    cases = [sorted(p.name[: -len(".npz")] for p in f.glob("*.npz")) for f in folders]
    if not cases[0]:
        raise InputError(
            "no <case>.npz probabilities; predict with --save-probabilities", path=folders[0]
        )
    for folder, found in zip(folders[1:], cases[1:]):
        if found != cases[0]:
            missing = sorted(set(cases[0]) ^ set(found))
            raise InputError(
                f"the folders do not hold the same cases ({len(missing)} differ, e.g. "
                f"{', '.join(missing[:3])}); ensemble folders predicted from the same input",
                path=folder,
            )
    headers = [_label_maps(f) for f in folders]
    jobs, skipped, failed = [], [], {}
    for case_id in cases[0]:
        header = next((h[case_id] for h in headers if case_id in h), None)
        if header is None:
            failed[case_id] = (
                f"{case_id}: no label map {case_id}{{ending}} next to {case_id}.npz to copy the "
                "geometry from"
            )
            _log.error("error: %s", failed[case_id])
            continue
        out = output / header.name
        out_npz = output / f"{case_id}.npz" if save_probabilities else None
        if not overwrite and out.is_file() and (out_npz is None or out_npz.is_file()):
            skipped.append(case_id)
            continue
        npz = tuple(f / f"{case_id}.npz" for f in folders)
        order = None if regions_class_order is None else tuple(regions_class_order)
        jobs.append((case_id, npz, header, out, out_npz, dict(postprocessing or {}), order))
    return _run("ensembled", jobs, _ensemble_case, output, num_workers, skipped, failed)


def _postprocess_case(job: tuple[Any, ...]) -> str:
    """Worker: postprocess one label map; '' on success, else the one-line reason."""
    case_id, path, out, rule = job
    try:
        labels, geometry = read_image(path)
        if labels.ndim != 3 or not np.all(labels == np.round(labels)):
            raise InputError("expected a 3D label map of integers", case_id=case_id, path=path)
        write_image(
            out,
            apply_postprocessing(labels.astype(np.int64), rule).astype(labels.dtype),
            geometry,
            reference=path,
        )
    except AutosegError as err:
        return str(err)
    return ""


def apply_postprocessing_to_folder(
    input_dir: Path,
    output: Path,
    rule: Mapping[int, bool],
    *,
    overwrite: bool = False,
    num_workers: int = 1,
) -> FolderReport:
    """Apply a postprocessing rule to every label map of a folder (module docstring).

    Raises:
        InputError: a missing or empty input folder, or an output equal to it.
    """
    folder = _check_folder(input_dir)
    output = Path(output)
    if output.resolve() == folder.resolve():
        raise InputError("OUTPUT must not be the input folder", path=output)
    maps = _label_maps(folder)
    if not maps:
        raise InputError("no label maps found", path=folder)
    jobs, skipped = [], []
    for case_id, path in maps.items():
        out = output / path.name
        if out.is_file() and not overwrite:
            skipped.append(case_id)
        else:
            jobs.append((case_id, path, out, dict(rule)))
    return _run("postprocessed", jobs, _postprocess_case, output, num_workers, skipped, {})
