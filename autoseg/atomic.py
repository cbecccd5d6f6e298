"""Atomic writes: every artefact is written to a temporary file in its folder, then renamed.

A killed process therefore never leaves a half-written plan, checkpoint or prediction: either
the old file or the complete new one is there. Temporary files are named
``.tmp-<host>-<pid>-<random>-<name>`` (host: six hex digits of its name), so the next run can
tell the leftovers of a killed process from the files of one still writing
(:func:`clean_temporaries`). They are created with mode ``0o666`` less the umask, exactly as
``open()`` creates files, so artefacts get the permissions the user's umask asks for.

A disk that is full or read-only, or a folder the user may not write, raises
:class:`~autoseg.errors.StorageError` naming the file (one line at the CLI, exit 2).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from autoseg.errors import StorageError
from autoseg.processes import host_tag

__all__ = [
    "STORAGE_ERRNOS",
    "TEMP_PREFIX",
    "atomic_path",
    "atomic_save_npy",
    "atomic_torch_save",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "check_writable",
    "make_folder",
    "storage_error",
    "temp_owner",
    "temporary_folder",
    "to_jsonable",
]

STORAGE_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
        errno.EFBIG,
        errno.EISDIR,
        errno.ENOTDIR,
        errno.EEXIST,
        errno.ENAMETOOLONG,
        errno.EIO,
    }
)
"""Errors of the file system rather than of autoseg: reported in one line, exit status 2."""
TEMP_PREFIX = ".tmp-"
"""Names of temporary files and folders start with it (``.tmp-<host>-<pid>-<random>-``)."""
_MAX_NAME = 255
_TEMP_NAME = re.compile(r"^\.tmp-(?P<host>[0-9a-f]{6})-(?P<pid>\d+)-")


def temp_owner(name: str) -> tuple[str, int] | None:
    """``(host tag, pid)`` of the process that made a temporary named ``name``; None for
    other names (and temporaries of autoseg versions that did not record it)."""
    match = _TEMP_NAME.match(name)
    return (match["host"], int(match["pid"])) if match else None


def storage_error(err: OSError, path: Path | str, *, what: str = "cannot write") -> StorageError:
    """The one-line error for a failed write of ``path`` (or of the file ``err`` names)."""
    named = Path(err.filename) if isinstance(err.filename, (str, os.PathLike)) else None
    where = Path(path) if named is None or named.name.startswith(TEMP_PREFIX) else named
    reason = err.strerror or type(err).__name__
    if err.errno == errno.ENOSPC:
        reason += "; free some space or write elsewhere"
    return StorageError(f"{what} ({reason})", path=where)


def make_folder(folder: Path | str) -> Path:
    """Create ``folder`` and its parents if needed.

    Raises:
        StorageError: if it cannot be created, or a file is in its place.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        if err.errno not in STORAGE_ERRNOS:
            raise
        if isinstance(err, FileExistsError) or err.errno == errno.ENOTDIR:
            raise StorageError(
                "cannot create the folder: a file is in the way", path=folder
            ) from None
        raise storage_error(err, folder, what="cannot create the folder") from None
    return folder


def _temp_name(name: str) -> str:
    head = f"{TEMP_PREFIX}{host_tag()}-{os.getpid()}-{secrets.token_hex(4)}-"
    room = _MAX_NAME - len(head.encode())
    while len(name.encode()) > room:  # keep the ending: writers pick the format by it
        name = name[1:]
    return head + name


def _create_temp(path: Path) -> Path:
    """Create an empty temporary file next to ``path`` (mode 0o666 less the umask)."""
    for _ in range(100):
        tmp = path.parent / _temp_name(path.name)
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666))
            return tmp
        except FileExistsError:
            continue
        except OSError as err:
            if err.errno not in STORAGE_ERRNOS:
                raise
            raise storage_error(err, path) from None
    raise StorageError("cannot create a temporary file", path=path)


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    The temporary name keeps the final name as its suffix (``.tmp-…-case.nii.gz``), so
    writers that pick a format by extension (nibabel, SimpleITK, numpy) behave the same.
    On an exception the temporary file is removed and ``path`` is untouched.

    Raises:
        StorageError: if the folder or the file cannot be written (full or read-only disk,
            permissions); raised for errors inside the block too.
    """
    path = Path(path)
    make_folder(path.parent)
    tmp = _create_temp(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        if err.errno is None and _nearly_full(path.parent):  # numpy: "N requested, M written"
            err = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))
        if err.errno not in STORAGE_ERRNOS:
            raise
        raise storage_error(err, path) from None
    finally:
        with suppress(OSError):
            tmp.unlink(missing_ok=True)


def _nearly_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


def check_writable(folder: Path | str) -> None:
    """Create ``folder`` if needed and check a file can be written into it.

    Raises:
        StorageError: naming the folder, if not.
    """
    folder = make_folder(folder)
    try:
        tmp = _create_temp(folder / "write-check")
    except StorageError as err:
        message = err.message.replace("cannot write", "cannot write into this folder")
        raise StorageError(message, path=folder) from None
    tmp.unlink()


@contextmanager
def temporary_folder(path: Path | str) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``path``; rename it onto ``path`` (replacing
    a folder there) if the block succeeds, else remove it."""
    path = Path(path)
    make_folder(path.parent)
    tmp = path.parent / _temp_name(path.name)
    try:
        os.mkdir(tmp, 0o777)  # the umask applies, as for any folder
    except OSError as err:
        if err.errno not in STORAGE_ERRNOS:
            raise
        raise storage_error(err, path, what="cannot create the folder") from None
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except OSError as err:
        if err.errno not in STORAGE_ERRNOS:
            raise
        raise storage_error(err, path) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, flushed to disk before the rename."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def atomic_write_text(path: Path | str, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path | str, obj: Any, *, indent: int | None = 2) -> None:
    """Serialise ``obj`` (after :func:`to_jsonable`) to ``path`` atomically."""
    atomic_write_text(path, json.dumps(to_jsonable(obj), indent=indent) + "\n")


def atomic_save_npy(path: Path | str, array: np.ndarray) -> None:
    """Save ``array`` as ``.npy`` atomically (memory-mappable, no pickle)."""
    with atomic_path(path) as tmp:
        np.save(tmp, np.ascontiguousarray(array), allow_pickle=False)


def atomic_torch_save(path: Path | str, obj: Any) -> None:
    """``torch.save`` to ``path`` atomically."""
    import torch

    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            torch.save(obj, tmp)
        except RuntimeError as err:  # torch's writer reports a full disk as a RuntimeError
            free = shutil.disk_usage(path.parent).free
            reason = "no space left on device" if free < 1 << 20 else _first_line(err)
            raise StorageError(f"cannot write ({reason})", path=path) from None


def to_jsonable(obj: Any) -> Any:
    """Convert dataclasses, numpy scalars/arrays, tuples, Paths and enums to plain JSON types."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[-1].strip() if lines else type(err).__name__
