"""A trained model as one zip file: written by ``autoseg export-model``, read by ``--model``.

Archive layout (a miniature workspace, so prediction runs on it unchanged)::

    autoseg_model.json                          manifest (below)
    plans.json                                  the plans the checkpoints were trained with
    best.json                                   find-best's choice (when every model it names
                                                is in the archive)
    results/<config>/fold_<k>/checkpoint_<name>.pt   weights and JSON only (no optimiser state)

The manifest: ``{"format": "autoseg-model", "schema_version": 1, "autoseg_version", "configs",
"folds": {config: [folds]}, "checkpoint", "files": {name: sha256}}``. Opening an archive
rejects entries with absolute paths, ``..`` components or symbolic links (zip-slip), extracts
only the files the manifest lists, and checks each file's SHA-256.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from autoseg import __version__
from autoseg.atomic import atomic_path
from autoseg.errors import CheckpointError, InputError
from autoseg.inference.checkpoint import load_checkpoint, save_checkpoint
from autoseg.inference.models import (
    ModelSelection,
    plans_differences,
    read_best_json,
    select_models,
    trained_folds,
)
from autoseg.log import get_logger
from autoseg.planner.plans import load_plans
from autoseg.workspace import Workspace

__all__ = [
    "ARCHIVE_FORMAT",
    "ARCHIVE_SCHEMA_VERSION",
    "MANIFEST_NAME",
    "ArchiveSummary",
    "export_model",
    "extract_model",
    "opened_model",
]

logger = get_logger(__name__)

ARCHIVE_FORMAT = "autoseg-model"
ARCHIVE_SCHEMA_VERSION = 1
MANIFEST_NAME = "autoseg_model.json"
_KEPT_KEYS = ("model", "state_json", "plans_json", "train_config_json", "configuration", "fold")


@dataclass(frozen=True)
class ArchiveSummary:
    """What an exported archive holds."""

    path: Path
    configs: tuple[str, ...]
    folds: dict[str, list[int | str]]
    checkpoint: str
    has_best: bool
    size_bytes: int

    def describe(self) -> str:
        """One line for the CLI."""
        parts = ", ".join(f"{c} folds {self.folds[c]}" for c in self.configs)
        best = " + best.json" if self.has_best else ""
        return (
            f"wrote {self.path} ({self.size_bytes / 1e6:.1f} MB): {parts}, "
            f"checkpoint_{self.checkpoint}{best}"
        )


def _selection(
    workspace: Workspace, config: str | None, folds: Sequence[int | str] | None, checkpoint: str
) -> ModelSelection:
    plans = load_plans(workspace.plans_json)
    if config not in (None, "all"):
        return select_models(workspace, plans, config, folds, checkpoint)
    names = [c for c in plans.configurations if trained_folds(workspace, c, checkpoint)]
    if not names:
        raise CheckpointError(
            f"no configuration has a trained fold (fold_<k>/checkpoint_{checkpoint}.pt); "
            "train with 'autoseg train' first",
            path=workspace.results_dir,
        )
    parts = [select_models(workspace, plans, c, folds, checkpoint) for c in names]
    return ModelSelection(tuple(names), {c: p.folds[c] for c, p in zip(names, parts)}, checkpoint)


def _best_fits(workspace: Workspace, selection: ModelSelection) -> bool:
    """True when best.json exists and every configuration/fold it names is exported."""
    if not workspace.best_json.is_file():
        return False
    configs, folds, _ = read_best_json(workspace.best_json)
    return all(c in selection.folds and set(folds) <= set(selection.folds[c]) for c in configs)


def export_model(
    workspace: Workspace,
    out: Path,
    *,
    config: str | None = None,
    folds: Sequence[int | str] | None = None,
    checkpoint: str = "final",
) -> ArchiveSummary:
    """Pack plans, checkpoints (weights only), best.json and a manifest into a zip, atomically.

    Args:
        workspace: A trained workspace.
        out: The archive to write (e.g. ``model.zip``).
        config: "best" (best.json's models), a configuration name, or None / "all" (every
            configuration with trained folds).
        folds: Folds to include (default: all trained folds, or best.json's).
        checkpoint: "final", "best" or "latest".

    Raises:
        PlansError, ConfigError, CheckpointError: as for prediction (missing plans or best.json,
            unknown configuration, untrained folds, checkpoints of other plans).
    """
    selection = _selection(workspace, config, folds, checkpoint)
    plans = load_plans(workspace.plans_json)
    has_best = _best_fits(workspace, selection)
    files: dict[str, str] = {}
    out = Path(out)
    with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w") as archive:
        _add_bytes(archive, files, "plans.json", workspace.plans_json.read_bytes())
        if has_best:
            _add_bytes(archive, files, "best.json", workspace.best_json.read_bytes())
        for paths in selection.checkpoint_paths(workspace).values():
            for path in paths:
                loaded = load_checkpoint(path)
                differences = plans_differences(plans, loaded.plans)
                if differences:
                    raise CheckpointError(
                        f"checkpoint was trained with other plans than {workspace.plans_json} "
                        f"(they differ in {', '.join(differences[:6])})",
                        path=path,
                    )
                arcname = path.relative_to(workspace.root).as_posix()
                _add_checkpoint(archive, files, arcname, {k: loaded.raw[k] for k in _KEPT_KEYS})
        manifest = {
            "format": ARCHIVE_FORMAT,
            "schema_version": ARCHIVE_SCHEMA_VERSION,
            "autoseg_version": __version__,
            "configs": list(selection.configs),
            "folds": {c: list(f) for c, f in selection.folds.items()},
            "checkpoint": checkpoint,
            "files": files,
        }
        archive.writestr(MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")
    return ArchiveSummary(
        out,
        selection.configs,
        {c: list(f) for c, f in selection.folds.items()},
        checkpoint,
        has_best,
        out.stat().st_size,
    )


def _add_bytes(archive: zipfile.ZipFile, files: dict[str, str], name: str, data: bytes) -> None:
    archive.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
    files[name] = hashlib.sha256(data).hexdigest()


def _add_checkpoint(
    archive: zipfile.ZipFile, files: dict[str, str], name: str, payload: dict[str, Any]
) -> None:
    with tempfile.TemporaryDirectory(prefix="autoseg-export-") as folder:
        slim = Path(folder) / "checkpoint.pt"
        save_checkpoint(slim, payload)
        archive.write(slim, name, compress_type=zipfile.ZIP_STORED)
        files[name] = hashlib.sha256(slim.read_bytes()).hexdigest()


def _check_member(info: zipfile.ZipInfo, archive: Path) -> None:
    """Reject absolute paths, ``..`` components and symbolic links (zip-slip)."""
    name = info.filename
    parts = PurePosixPath(name.replace("\\", "/")).parts
    is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
        raise InputError(
            f"unsafe entry {name!r} (absolute path or '..'); refusing it", path=archive
        )
    if is_link:
        raise InputError(f"entry {name!r} is a symbolic link; refusing it", path=archive)


def _read_manifest(archive: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(archive.read(MANIFEST_NAME))
    except KeyError:
        raise InputError(
            f"not an autoseg model archive (no {MANIFEST_NAME}); create one with "
            "'autoseg export-model'",
            path=path,
        ) from None
    except ValueError as err:
        raise InputError(f"{MANIFEST_NAME} is not valid JSON: {err}", path=path) from None
    if not isinstance(manifest, dict) or manifest.get("format") != ARCHIVE_FORMAT:
        raise InputError(f"{MANIFEST_NAME} is not an autoseg model manifest", path=path)
    if manifest.get("schema_version") != ARCHIVE_SCHEMA_VERSION:
        raise InputError(
            f"model archive schema_version {manifest.get('schema_version')!r} is not "
            f"{ARCHIVE_SCHEMA_VERSION}; export it again with this autoseg version",
            path=path,
        )
    if not isinstance(manifest.get("files"), dict) or "plans.json" not in manifest["files"]:
        raise InputError(f"{MANIFEST_NAME} lists no plans.json", path=path)
    return manifest


def extract_model(archive: Path, destination: Path) -> Workspace:
    """Extract a model archive into ``destination`` and return it as a workspace.

    Raises:
        InputError: if the file is missing, not a zip, not an autoseg model archive, holds an
            unsafe entry, or a file's SHA-256 differs from the manifest.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise InputError("model archive not found", path=archive)
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _check_member(info, archive)
            manifest = _read_manifest(zf, archive)
            for name, digest in manifest["files"].items():
                _extract_file(zf, archive, str(name), str(digest), Path(destination))
    except zipfile.BadZipFile as err:
        raise InputError(f"not a valid zip file ({err})", path=archive) from None
    logger.info("model archive %s: %s", archive.name, ", ".join(manifest.get("configs", [])))
    return Workspace(Path(destination))


def _extract_file(
    zf: zipfile.ZipFile, archive: Path, name: str, digest: str, destination: Path
) -> None:
    if name not in zf.namelist():
        raise InputError(f"the manifest lists {name!r} but the archive lacks it", path=archive)
    _check_member(zf.getinfo(name), archive)
    target = destination.joinpath(*PurePosixPath(name).parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    sha = hashlib.sha256()
    with zf.open(name) as source, open(target, "wb") as sink:
        while chunk := source.read(1 << 20):
            sha.update(chunk)
            sink.write(chunk)
    if sha.hexdigest() != digest:
        raise InputError(f"{name} is corrupted (SHA-256 differs from the manifest)", path=archive)


@contextlib.contextmanager
def opened_model(archive: Path) -> Iterator[Workspace]:
    """Extract ``archive`` into a temporary folder for the block; removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="autoseg-model-") as folder:
        yield extract_model(archive, Path(folder))
