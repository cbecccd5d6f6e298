"""Read and write images with their geometry: NIfTI via nibabel, NRRD/MHA/MHD via SimpleITK.

Arrays come back in array order ``(Z, Y, X)``, or ``(C, Z, Y, X)`` for 4D files whose
fourth axis holds channels (see :mod:`autoseg.data.geometry`). Writes are atomic.

A ``.nii.gz`` is decompressed whole before nibabel parses it, so its gzip checksum (CRC-32
and length) and trailing bytes are checked: nibabel alone reads only as far as the voxels
go and never notices a damaged member or garbage after it (this is also ~1.4x faster). A
NIfTI header whose pixdim sets the voxel size (no sform) must hold positive voxel sizes;
nibabel would silently take their absolute value, or 1 for a zero.
"""

from __future__ import annotations

import io
import logging
import zlib
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from autoseg.atomic import atomic_path
from autoseg.data.file_endings import NIFTI_ENDINGS, SITK_ENDINGS, SUPPORTED_ENDINGS, file_ending
from autoseg.data.geometry import Geometry
from autoseg.data.header_checks import file_problem
from autoseg.errors import DatasetError, StorageError

__all__ = [
    "NIFTI_ENDINGS",
    "SITK_ENDINGS",
    "SUPPORTED_ENDINGS",
    "file_ending",
    "read_geometry",
    "read_image",
    "write_image",
]

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
_GZIP_MAGIC = b"\x1f\x8b"
_HEADER_BYTES = 348  # a NIfTI-1 header
# nibabel logs header repairs ("pixdim[1,2,3] should be positive") to stderr; autoseg
# reports the problem itself, in one line.
logging.getLogger("nibabel.global").setLevel(logging.ERROR)


def _is_nifti(path: Path) -> bool:
    return file_ending(path) in NIFTI_ENDINGS


def read_geometry(path: Path | str) -> tuple[Geometry, int]:
    """Read only the header: the geometry and the number of channels (1 for 3D images).

    Raises:
        DatasetError: if the file is missing, unreadable or not 3D/4D.
    """
    path = Path(path)
    _check_exists(path)
    try:
        if _is_nifti(path):
            img = _load_nifti(path)
            shape_ijk = img.shape
            _check_ndim(path, len(shape_ijk))
            channels = shape_ijk[3] if len(shape_ijk) == 4 else 1
            return Geometry.from_affine(img.affine, tuple(shape_ijk[:3][::-1])), channels
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        _check_ndim(path, reader.GetDimension())
        size = reader.GetSize()
        geometry = _sitk_geometry(
            size[:3][::-1], reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection()
        )
        return geometry, reader.GetNumberOfComponents()
    except DatasetError:
        raise
    except Exception as err:
        raise DatasetError(f"cannot read image header: {_reason(err)}", path=path) from None


def read_image(path: Path | str) -> tuple[np.ndarray, Geometry]:
    """Read voxels and geometry.

    Returns:
        ``(array, geometry)``: array (Z, Y, X) for 3D files, (C, Z, Y, X) for 4D files,
        in the file's stored dtype (scaled data come back as floats).

    Raises:
        DatasetError: if the file is missing, truncated, unreadable or not 3D/4D.
    """
    path = Path(path)
    _check_exists(path)
    try:
        if _is_nifti(path):
            img = _read_nifti(path)
            _check_ndim(path, len(img.shape))
            data = np.asanyarray(img.dataobj)
            array = data.transpose(2, 1, 0) if data.ndim == 3 else data.transpose(3, 2, 1, 0)
            geometry = Geometry.from_affine(img.affine, tuple(img.shape[:3][::-1]))
            return np.ascontiguousarray(array), geometry
        image = sitk.ReadImage(str(path))
        _check_ndim(path, image.GetDimension())
        array = sitk.GetArrayFromImage(image)
        if image.GetNumberOfComponentsPerPixel() > 1:
            array = np.moveaxis(array, -1, 0)
        geometry = _sitk_geometry(
            image.GetSize()[::-1], image.GetSpacing(), image.GetOrigin(), image.GetDirection()
        )
        return np.ascontiguousarray(array), geometry
    except DatasetError:
        raise
    except Exception as err:
        raise DatasetError(f"cannot read image: {_reason(err)}", path=path) from None


def write_image(
    path: Path | str,
    array: np.ndarray,
    geometry: Geometry,
    *,
    reference: Path | str | None = None,
) -> None:
    """Write a 3D array (Z, Y, X) with its geometry, atomically.

    With ``reference`` (an image of the same format and shape), the reference's header
    geometry is copied bit for bit — NIfTI qform/sform and their codes, or ITK spacing,
    origin and direction — so the output lines up with the reference exactly.

    Raises:
        ValueError: if the array is not 3D or its shape differs from ``geometry.shape``.
    """
    path = Path(path)
    if array.ndim != 3 or tuple(array.shape) != tuple(geometry.shape):
        raise ValueError(f"array shape {array.shape} does not match geometry {geometry.shape}")
    reference = Path(reference) if reference is not None else None
    if reference is not None and _is_nifti(reference) != _is_nifti(path):
        reference = None
    with atomic_path(path) as tmp:
        if _is_nifti(path):
            _write_nifti(tmp, array, geometry, reference)
        else:
            try:
                _write_sitk(tmp, array, geometry, reference)
            except RuntimeError as err:  # SimpleITK reports a full or read-only disk so
                raise StorageError(f"cannot write ({_reason(err)})", path=path) from None


def _write_nifti(tmp: Path, array: np.ndarray, geometry: Geometry, ref: Path | None) -> None:
    data = np.ascontiguousarray(array.transpose(2, 1, 0))
    if ref is not None:
        ref_header = _load_nifti(ref).header
        header = nib.Nifti1Header()
        sform, sform_code = ref_header.get_sform(coded=True)
        qform, qform_code = ref_header.get_qform(coded=True)
        header.set_xyzt_units(*ref_header.get_xyzt_units())
        img = nib.Nifti1Image(data, None, header)
        img.header.set_zooms(ref_header.get_zooms()[:3])
        # Copy the raw quaternion fields, not the matrix: set_qform would re-quantise.
        for key in (
            "quatern_b",
            "quatern_c",
            "quatern_d",
            "qoffset_x",
            "qoffset_y",
            "qoffset_z",
            "srow_x",
            "srow_y",
            "srow_z",
        ):
            img.header[key] = ref_header[key]
        img.header["pixdim"][0] = ref_header["pixdim"][0]
        img.header["qform_code"] = int(qform_code or 0)
        img.header["sform_code"] = int(sform_code or 0)
        if sform is None and qform is None:
            img.header.set_sform(geometry.affine, code=1)
        img.update_header = lambda: None  # type: ignore[method-assign]
    else:
        img = nib.Nifti1Image(data, geometry.affine)
        img.header.set_qform(geometry.affine, code=1)
        img.header.set_sform(geometry.affine, code=1)
    img.header.set_data_dtype(data.dtype)
    img.header["scl_slope"] = np.nan
    img.header["scl_inter"] = np.nan
    nib.save(img, str(tmp))


def _write_sitk(tmp: Path, array: np.ndarray, geometry: Geometry, ref: Path | None) -> None:
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    if ref is not None:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(ref))
        reader.ReadImageInformation()
        image.SetSpacing(reader.GetSpacing())
        image.SetOrigin(reader.GetOrigin())
        image.SetDirection(reader.GetDirection())
    else:
        image.SetSpacing(tuple(geometry.spacing[::-1]))
        ras = np.asarray(geometry.origin)
        image.SetOrigin(tuple(float(v) for v in _LPS_TO_RAS @ ras))
        direction = _LPS_TO_RAS @ geometry.direction_matrix
        image.SetDirection(tuple(float(v) for v in direction.ravel()))
    sitk.WriteImage(image, str(tmp), useCompression=True)


def _sitk_geometry(
    shape_zyx: tuple[int, ...],
    spacing_ijk: tuple[float, ...],
    origin_lps: tuple[float, ...],
    direction_lps: tuple[float, ...],
) -> Geometry:
    origin = _LPS_TO_RAS @ np.asarray(origin_lps[:3], dtype=np.float64)
    direction = _LPS_TO_RAS @ np.asarray(direction_lps, dtype=np.float64).reshape(3, 3)
    return Geometry(
        shape=tuple(int(v) for v in shape_zyx[-3:]),  # type: ignore[arg-type]
        spacing=tuple(float(v) for v in spacing_ijk[:3][::-1]),  # type: ignore[arg-type]
        origin=tuple(float(v) for v in origin),  # type: ignore[arg-type]
        direction=tuple(float(v) for v in direction.ravel()),  # type: ignore[arg-type]
    )


def _load_nifti(path: Path) -> Any:
    """nibabel image of a NIfTI file (typed loosely: nibabel's stubs name a base class)."""
    return nib.load(str(path))


def _read_nifti(path: Path) -> Any:
    """nibabel image of a NIfTI file, a ``.gz`` decompressed and checked whole first."""
    if not path.name.lower().endswith(".gz"):
        with open(path, "rb") as handle:
            _check_pixdim(path, handle.read(_HEADER_BYTES))
        return _load_nifti(path)
    data = _gunzip(path)
    _check_pixdim(path, data[:_HEADER_BYTES])
    return nib.Nifti1Image.from_bytes(data)


def _gunzip(path: Path) -> bytes:
    """Every gzip member of ``path`` decompressed, their CRC-32 and lengths checked.

    Raises:
        DatasetError: for a damaged member, a cut-off file, or trailing garbage.
    """
    data = path.read_bytes()
    if data[:2] != _GZIP_MAGIC:
        raise DatasetError("cannot read image: not a gzip file, though named .gz", path=path)
    parts, rest = [], memoryview(data)
    while rest:
        inflater = zlib.decompressobj(wbits=31)
        try:
            parts.append(inflater.decompress(rest))
            parts.append(inflater.flush())
        except zlib.error as err:
            message = f"cannot read image: gzip data is damaged ({err}); copy the file again"
            raise DatasetError(message, path=path) from None
        if not inflater.eof:
            raise DatasetError(
                "cannot read image: gzip file is cut off (it ends before its end-of-stream "
                "marker); copy it again",
                path=path,
            )
        rest = memoryview(inflater.unused_data.lstrip(b"\x00"))  # zero padding is allowed
        if rest and rest[:2] != _GZIP_MAGIC:
            raise DatasetError(
                f"cannot read image: {len(rest)} byte(s) of garbage after the gzip data; copy "
                "the file again",
                path=path,
            )
    return b"".join(parts)


def _check_pixdim(path: Path, raw: bytes) -> None:
    """Without an sform, pixdim sets the voxel size: it must be positive and finite (read
    from the raw header: nibabel's header check already 'fixes' it)."""
    try:
        header = nib.Nifti1Header.from_fileobj(io.BytesIO(raw), check=False)
    except Exception:
        return  # not a NIfTI-1 header: nibabel's reading reports it
    if int(header["sform_code"]) != 0:
        return
    pixdim = np.asarray(header["pixdim"][1:4], dtype=np.float64)
    if np.isfinite(pixdim).all() and (pixdim > 0).all():
        return
    shown = ", ".join(f"{v:g}" for v in pixdim)
    raise DatasetError(
        f"header pixdim (voxel size, i j k) ({shown}) must be positive: the geometry cannot be "
        "trusted (nibabel would take absolute values, or 1 for a zero); fix the header",
        path=path,
    )


def _check_exists(path: Path) -> None:
    problem = file_problem(path)
    if problem is not None:
        raise DatasetError(problem, path=path)


def _check_ndim(path: Path, ndim: int) -> None:
    if ndim not in (3, 4):
        raise DatasetError(f"expected a 3D image (or 4D with channels), got {ndim}D", path=path)


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__
