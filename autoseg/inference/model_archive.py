"""A trained model as one zip file: written by ``autoseg export-model``, read by ``--model``.

Archive layout (a miniature workspace, so prediction runs on it unchanged)::

    autoseg_model.json                          manifest (below)
    plans.json                                  the plans the checkpoints were trained with
    best.json                                   find-best's choice (when every model it names
                                                is in the archive)
    results/<config>/fold_<k>/checkpoint_<name>.pt   weights and JSON only (no optimiser state)

The manifest: ``{"format": "autoseg-model", "schema_version": 1, "autoseg_version", "configs",
"folds": {config: [folds]}, "checkpoint", "files": {name: sha256}, "sizes": {name: bytes}}``.
Opening an archive (:mod:`autoseg.inference.archive_reader`) checks every entry against it
before extracting anything; see there for what the digests do and do not prove.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoseg import __version__
from autoseg.atomic import atomic_path
from autoseg.errors import CheckpointError, ConfigError
from autoseg.inference.archive_reader import (
    ARCHIVE_FORMAT,
    ARCHIVE_SCHEMA_VERSION,
    MANIFEST_NAME,
    TEMP_PREFIXES,
    archive_sha256,
    extract_model,
    opened_model,
    temporary_model_folder,
)
from autoseg.inference.checkpoint import load_checkpoint, save_checkpoint
from autoseg.inference.models import (
    ModelSelection,
    plans_differences,
    read_best_json,
    select_models,
    trained_folds,
)
from autoseg.log import get_logger
from autoseg.planner.plans import Plans, load_plans
from autoseg.workspace import Workspace

__all__ = [
    "ARCHIVE_FORMAT",
    "ARCHIVE_SCHEMA_VERSION",
    "MANIFEST_NAME",
    "ArchiveSummary",
    "export_model",
    "extract_model",
    "opened_model",
]  # reading lives in archive_reader; re-exported here, where archives are described

logger = get_logger(__name__)
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
    sha256: str = ""

    def describe(self) -> str:
        """Two lines for the CLI: what was written, and the archive's SHA-256 to pin."""
        parts = ", ".join(f"{c} folds {self.folds[c]}" for c in self.configs)
        best = " + best.json" if self.has_best else ""
        return (
            f"wrote {self.path} ({self.size_bytes / 1e6:.1f} MB): {parts}, "
            f"checkpoint_{self.checkpoint}{best}\n"
            f"SHA-256 {self.sha256} (predict --model-sha256 checks it)"
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
    stages = {s: f for p in parts for s, f in p.stage_folds.items()}
    return ModelSelection(
        tuple(names),
        {c: p.folds[c] for c, p in zip(names, parts)},
        checkpoint,
        stage_folds=stages,
    )


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
            unknown configuration, untrained folds, checkpoints of other plans); ConfigError
            also when ``out`` is a folder.
        StorageError: if ``out`` cannot be written (full or read-only disk).
    """
    out = Path(out)
    if out.is_dir():
        raise ConfigError(
            f"--out is a folder; give the archive's file name, e.g. {out / 'model.zip'}",
            path=out,
        )
    selection = _selection(workspace, config, folds, checkpoint)
    plans = load_plans(workspace.plans_json)
    has_best = _best_fits(workspace, selection)
    scratch = temporary_model_folder(TEMP_PREFIXES[1])
    try:
        _write_archive(workspace, out, selection, plans, has_best, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return ArchiveSummary(
        out,
        selection.configs,
        {c: list(f) for c, f in selection.folds.items()},
        checkpoint,
        has_best,
        out.stat().st_size,
        archive_sha256(out),
    )


def _write_archive(
    workspace: Workspace,
    out: Path,
    selection: ModelSelection,
    plans: Plans,
    has_best: bool,
    scratch: Path,
) -> None:
    files: dict[str, str] = {}  # name -> SHA-256
    sizes: dict[str, int] = {}
    with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w") as archive:
        _add_bytes(archive, files, sizes, "plans.json", workspace.plans_json.read_bytes())
        if has_best:
            _add_bytes(archive, files, sizes, "best.json", workspace.best_json.read_bytes())
        for path in selection.all_checkpoint_paths(workspace):  # cascades: first stages too
            loaded = load_checkpoint(path)
            differences = plans_differences(plans, loaded.plans)
            if differences:
                raise CheckpointError(
                    f"checkpoint was trained with other plans than {workspace.plans_json} "
                    f"(they differ in {', '.join(differences[:6])})",
                    path=path,
                )
            arcname = path.relative_to(workspace.root).as_posix()
            payload = {k: loaded.raw[k] for k in _KEPT_KEYS}
            _add_checkpoint(archive, files, sizes, arcname, payload, scratch)
        manifest = {
            "format": ARCHIVE_FORMAT,
            "schema_version": ARCHIVE_SCHEMA_VERSION,
            "autoseg_version": __version__,
            "configs": list(selection.configs),
            "folds": {c: list(f) for c, f in selection.folds.items()},
            "checkpoint": selection.checkpoint,
            "files": files,
            "sizes": sizes,
        }
        archive.writestr(MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")


def _add_bytes(
    archive: zipfile.ZipFile, files: dict[str, str], sizes: dict[str, int], name: str, data: bytes
) -> None:
    archive.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
    files[name], sizes[name] = hashlib.sha256(data).hexdigest(), len(data)


def _add_checkpoint(
    archive: zipfile.ZipFile,
    files: dict[str, str],
    sizes: dict[str, int],
    name: str,
    payload: dict[str, Any],
    scratch: Path,
) -> None:
    slim = scratch / "checkpoint.pt"
    save_checkpoint(slim, payload)
    archive.write(slim, name, compress_type=zipfile.ZIP_STORED)
    files[name], sizes[name] = archive_sha256(slim), slim.stat().st_size
    slim.unlink()
