"""Opening a model archive (``autoseg predict --model``) without trusting it.

Every check runs on the zip's directory before a byte is extracted: entries with absolute
paths, ``..`` components or symbolic links (zip-slip) and duplicate names are refused; only
the files the manifest lists are extracted, each of exactly the size the manifest gives
(``sizes``; archives without them are held to the sizes the zip declares); a compressed
entry may not expand more than :data:`MAX_EXPANSION` times (zip bombs), the whole archive
not beyond :data:`MAX_EXTRACTED_BYTES`, and the temporary folder must have room for it.
While extracting, each file is cut off as soon as it outgrows its size, and its SHA-256 is
compared with the manifest's.

What the digests prove: that the files are the ones the manifest lists, unchanged since
the archive was made (no damage in transfer or storage). They do not prove who made it:
whoever can write an archive can write a matching manifest. To trust an archive's origin,
compare the SHA-256 of the whole file with one published by its author, out of band:
``--model-sha256`` does that before anything is opened.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from autoseg.atomic import STORAGE_ERRNOS, make_folder
from autoseg.errors import InputError, StorageError
from autoseg.leftovers import clean_temporaries
from autoseg.log import get_logger
from autoseg.processes import host_tag
from autoseg.workspace import Workspace

__all__ = [
    "ARCHIVE_FORMAT",
    "ARCHIVE_SCHEMA_VERSION",
    "MANIFEST_NAME",
    "MAX_EXPANSION",
    "MAX_EXTRACTED_BYTES",
    "TEMP_PREFIXES",
    "archive_sha256",
    "extract_model",
    "opened_model",
    "temporary_model_folder",
]

logger = get_logger(__name__)

ARCHIVE_FORMAT = "autoseg-model"
ARCHIVE_SCHEMA_VERSION = 1
MANIFEST_NAME = "autoseg_model.json"
MAX_EXTRACTED_BYTES = 64 * 2**30
"""Largest total size of the files of an archive (64 GiB: far beyond any 5-fold ensemble)."""
MAX_EXPANSION = 100
"""Largest ratio of a compressed entry's size to its compressed size (checkpoints are
stored uncompressed; JSON compresses about 5:1)."""
_MAX_MANIFEST_BYTES = 1 << 20
_SMALL_BYTES = 1 << 20  # entries up to this size may compress as well as they like
_CHUNK = 1 << 20
TEMP_PREFIXES = ("autoseg-model-", "autoseg-export-")
"""Temporary folders of opened and exported archives (``<prefix><host>-<pid>-...``)."""


def archive_sha256(path: Path) -> str:
    """SHA-256 of a whole archive file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


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
        info = archive.getinfo(MANIFEST_NAME)
    except KeyError:
        raise InputError(
            f"not an autoseg model archive (no {MANIFEST_NAME}); create one with "
            "'autoseg export-model'",
            path=path,
        ) from None
    if info.file_size > _MAX_MANIFEST_BYTES:
        raise InputError(f"{MANIFEST_NAME} is {info.file_size} bytes; refusing it", path=path)
    try:
        manifest = json.loads(archive.read(MANIFEST_NAME))
    except (ValueError, RecursionError) as err:
        reason = "nested too deeply" if isinstance(err, RecursionError) else str(err)
        raise InputError(f"{MANIFEST_NAME} is not valid JSON: {reason}", path=path) from None
    if not isinstance(manifest, dict) or manifest.get("format") != ARCHIVE_FORMAT:
        raise InputError(f"{MANIFEST_NAME} is not an autoseg model manifest", path=path)
    if manifest.get("schema_version") != ARCHIVE_SCHEMA_VERSION:
        raise InputError(
            f"model archive schema_version {manifest.get('schema_version')!r} is not "
            f"{ARCHIVE_SCHEMA_VERSION}; export it again with this autoseg version",
            path=path,
        )
    files, sizes = manifest.get("files"), manifest.get("sizes", {})
    if not isinstance(files, dict) or "plans.json" not in files:
        raise InputError(f"{MANIFEST_NAME} lists no plans.json", path=path)
    if not isinstance(sizes, dict):
        raise InputError(f"{MANIFEST_NAME}: 'sizes' must map file names to bytes", path=path)
    return manifest


def _check_members(zf: zipfile.ZipFile, archive: Path) -> None:
    """Every entry: no zip-slip (see :func:`_check_member`), no name twice."""
    names = zf.namelist()
    if len(names) != len(set(names)):
        duplicated = sorted({n for n in names if names.count(n) > 1})
        raise InputError(f"entries {duplicated} appear twice; refusing the archive", path=archive)
    for info in zf.infolist():
        _check_member(info, archive)


def _planned_entries(
    zf: zipfile.ZipFile, manifest: dict[str, Any], archive: Path
) -> list[tuple[zipfile.ZipInfo, str, int]]:
    """``(entry, sha256, size)`` of every listed file, each checked before extraction."""
    names = zf.namelist()
    planned, total = [], 0
    for name, digest in manifest["files"].items():
        if name not in names:
            raise InputError(f"the manifest lists {name!r} but the archive lacks it", path=archive)
        info = zf.getinfo(name)
        size = manifest["sizes"].get(name) if "sizes" in manifest else info.file_size
        if size != info.file_size:
            raise InputError(
                f"entry {name!r} holds {info.file_size} bytes but the manifest says {size!r}; "
                "refusing the archive",
                path=archive,
            )
        expansion = info.file_size / max(info.compress_size, 1)
        if info.file_size > _SMALL_BYTES and expansion > MAX_EXPANSION:
            raise InputError(
                f"entry {name!r} would expand {expansion:.0f} times ({info.compress_size} -> "
                f"{info.file_size} bytes), more than {MAX_EXPANSION}; refusing a likely zip bomb",
                path=archive,
            )
        total += info.file_size
        planned.append((info, str(digest), info.file_size))
    if total > MAX_EXTRACTED_BYTES:
        raise InputError(
            f"the archive's files hold {total / 2**30:.1f} GiB, more than "
            f"{MAX_EXTRACTED_BYTES / 2**30:.0f} GiB; refusing it",
            path=archive,
        )
    return planned


def _check_room(destination: Path, needed: int) -> None:
    free = shutil.disk_usage(destination).free
    if free < needed + (64 << 20):
        raise StorageError(
            f"extracting the model archive needs {needed / 1e6:.0f} MB but {free / 1e6:.0f} MB "
            "are free here; set TMPDIR to a folder with more room",
            path=destination,
        )


def extract_model(archive: Path, destination: Path) -> Workspace:
    """Extract a model archive into ``destination`` and return it as a workspace.

    Raises:
        InputError: if the file is missing, not a zip, not an autoseg model archive, holds an
            unsafe entry, an entry of another size than the manifest says, a likely zip bomb,
            or a file whose SHA-256 differs from the manifest.
        StorageError: if ``destination`` lacks room or cannot be written.
    """
    archive, destination = Path(archive), Path(destination)
    if not archive.is_file():
        raise InputError("model archive not found", path=archive)
    try:
        with zipfile.ZipFile(archive) as zf:
            _check_members(zf, archive)
            manifest = _read_manifest(zf, archive)
            planned = _planned_entries(zf, manifest, archive)
            _check_room(make_folder(destination), sum(size for _, _, size in planned))
            for info, digest, size in planned:
                _extract_file(zf, archive, info, digest, size, destination)
    except zipfile.BadZipFile as err:
        raise InputError(f"not a valid zip file ({err})", path=archive) from None
    logger.info("model archive %s: %s", archive.name, ", ".join(manifest.get("configs", [])))
    return Workspace(destination)


def _extract_file(
    zf: zipfile.ZipFile,
    archive: Path,
    info: zipfile.ZipInfo,
    digest: str,
    size: int,
    destination: Path,
) -> None:
    target = destination.joinpath(*PurePosixPath(info.filename).parts)
    sha, written = hashlib.sha256(), 0
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as source, open(target, "wb") as sink:
            while chunk := source.read(_CHUNK):
                written += len(chunk)
                if written > size:
                    raise InputError(
                        f"{info.filename} expands beyond its {size} bytes; refusing it",
                        path=archive,
                    )
                sha.update(chunk)
                sink.write(chunk)
    except OSError as err:
        if err.errno not in STORAGE_ERRNOS:
            raise
        raise StorageError(
            f"cannot extract the model archive here ({err.strerror}); set TMPDIR to a folder "
            "with more room",
            path=destination,
        ) from None
    if written != size or sha.hexdigest() != digest:
        raise InputError(
            f"{info.filename} is corrupted (SHA-256 differs from the manifest)", path=archive
        )


def temporary_model_folder(prefix: str) -> Path:
    """A new private temporary folder named after this process (so leftovers can be told)."""
    for stale_prefix in TEMP_PREFIXES:
        clean_temporaries(tempfile.gettempdir(), prefix=stale_prefix)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{host_tag()}-{os.getpid()}-"))


@contextlib.contextmanager
def opened_model(archive: Path, *, sha256: str | None = None) -> Iterator[Workspace]:
    """Extract ``archive`` into a temporary folder for the block; removed afterwards.

    Leftover folders of killed runs (``autoseg-model-*``) are removed first. With
    ``sha256``, the archive file must have that SHA-256 (``--model-sha256``).

    Raises:
        InputError: see :func:`extract_model`; or the archive's SHA-256 differs.
    """
    archive = Path(archive)
    if sha256 is not None:
        if not archive.is_file():
            raise InputError("model archive not found", path=archive)
        found = archive_sha256(archive)
        if found != sha256.strip().lower():
            raise InputError(
                f"the archive's SHA-256 is {found}, not the pinned {sha256.strip()}: it is not "
                "the archive you meant to trust",
                path=archive,
            )
    folder = temporary_model_folder(TEMP_PREFIXES[0])
    try:
        yield extract_model(archive, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
