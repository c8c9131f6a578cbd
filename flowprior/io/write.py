"""Encoding files: the output formats a suffix selects, and :func:`write_image` / :func:`write_array` (atomic).

PNG and 16-bit colour TIFF go through this package's streaming encoders (:mod:`flowprior.io.codecs`), the rest
through Pillow."""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from torch import Tensor

from flowprior.io.atomic import atomic_write, atomic_write_bytes
from flowprior.io.codecs import EXIF_HEADER, write_png, write_tiff
from flowprior.io.quantize import to_hwc
from flowprior.io.rows import LazyRows
from flowprior.io.tiff_exif import pillow_tiff_exif, tiff_text_tags


@dataclass(frozen=True)
class OutputFormat:
    """What a file suffix can store."""

    name: str
    bit_depths: tuple[int, ...]
    alpha: bool
    lossy: bool


_PNG = OutputFormat("PNG", (8, 16), alpha=True, lossy=False)


_TIFF = OutputFormat("TIFF", (8, 16), alpha=True, lossy=False)


_JPEG = OutputFormat("JPEG", (8,), alpha=False, lossy=True)


_WEBP = OutputFormat("WEBP", (8,), alpha=True, lossy=True)


_OUTPUT_FORMATS = {".png": _PNG, ".tif": _TIFF, ".tiff": _TIFF, ".jpg": _JPEG, ".jpeg": _JPEG, ".webp": _WEBP}


def output_format(path: str | os.PathLike) -> OutputFormat:
    """The :class:`OutputFormat` for a path's suffix (case-insensitive); ValueError for unsupported ones."""
    suffix = Path(path).suffix.lower()
    if suffix not in _OUTPUT_FORMATS:
        supported = ", ".join(_OUTPUT_FORMATS)
        raise ValueError(
            f"cannot write {os.fspath(path)}: unsupported suffix {suffix or '(none)'!r}; use {supported}"
        )
    return _OUTPUT_FORMATS[suffix]


def write_image(
    path: str | os.PathLike,
    pixels: Tensor,
    *,
    bit_depth: int = 8,
    alpha: Tensor | None = None,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    quality: int | None = None,
    dpi: tuple[float, float] | None = None,
) -> Path:
    """Write an image atomically; the format follows the suffix (.png, .tif/.tiff, .jpg/.jpeg, .webp).

    Args:
        path: destination; its directory must exist. An existing file is replaced.
        pixels: (1, C, H, W) or (C, H, W), C = 1 or 3, values in [0, 1] (clipped, then see :func:`to_uint`).
        bit_depth: 8 or 16 (16 only for PNG and TIFF).
        alpha: (1, 1, H, W) or (1, H, W) in [0, 1], or None. Not for JPEG.
        icc_profile: ICC profile bytes to embed, or None.
        exif: EXIF bytes (with or without the ``Exif\\0\\0`` header) to embed, or None.
        quality: JPEG/WebP quality 1-100. Default: JPEG 95 (always 4:4:4 chroma), WebP lossless.
        dpi: (x, y) pixels per inch to record (PNG pHYs, JFIF, TIFF resolution; WebP has no field), or None.

    Returns:
        The path written.

    Raises:
        ValueError: unsupported suffix, bit depth or alpha for the format, bad shapes, NaN pixels.
        FileNotFoundError: the destination directory does not exist.
    """
    _check_writable(Path(path), bit_depth, alpha is not None, quality)  # before quantizing
    return write_array(path, to_hwc(pixels, alpha, bit_depth), icc_profile=icc_profile, exif=exif, quality=quality,
                       dpi=dpi)


def _check_writable(path: Path, bit_depth: int, alpha: bool, quality: int | None) -> OutputFormat:
    """The output format of ``path``; ValueError when it cannot store this bit depth, alpha or quality."""
    fmt = output_format(path)
    if bit_depth not in fmt.bit_depths:
        depths = " or ".join(map(str, fmt.bit_depths))
        raise ValueError(f"cannot write {path}: {fmt.name} stores {depths}-bit samples, not {bit_depth}-bit")
    if alpha and not fmt.alpha:
        raise ValueError(f"cannot write {path}: {fmt.name} has no alpha channel; use .png, .tif or .webp")
    if quality is not None and (not fmt.lossy or not 1 <= quality <= 100):
        raise ValueError(f"cannot write {path}: quality must be 1-100 and only applies to JPEG/WebP")
    return fmt


def write_array(
    path: str | os.PathLike,
    rows,
    *,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    quality: int | None = None,
    dpi: tuple[float, float] | None = None,
) -> Path:
    """Write quantized samples atomically; the format follows the suffix, as for :func:`write_image`.

    Args:
        path: destination; its directory must exist.
        rows: (H, W, C) uint8/uint16 samples, C = 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA: a numpy array, or anything
            that gives blocks of rows as ``rows[y0:y1]`` and has ``shape`` and ``dtype`` (:class:`RowStore`,
            :class:`LazyRows`). PNG and 16-bit colour TIFF are encoded a block of rows at a time; JPEG, WebP and the
            other TIFFs go through Pillow, which needs the whole array.
        icc_profile, exif, quality, dpi: as for :func:`write_image`.
    """
    path = Path(path)
    bit_depth, channels = (16 if np.dtype(rows.dtype) == np.uint16 else 8), rows.shape[2]
    fmt = _check_writable(path, bit_depth, channels in (2, 4), quality)
    if exif and not exif.startswith(EXIF_HEADER):
        exif = EXIF_HEADER + exif
    if fmt is _PNG:
        return atomic_write(path, lambda handle: write_png(handle, rows, icc_profile, exif, dpi))
    if fmt is _TIFF and bit_depth == 16 and channels > 1:
        if channels == 2:  # Pillow and OpenCV cannot read 2-channel 16-bit TIFF: store gray+alpha as RGBA
            rows = LazyRows((*rows.shape[:2], 4), rows.dtype, lambda y0, y1, gray=rows: gray[y0:y1][..., [0, 0, 0, 1]])
        text, dropped = tiff_text_tags(exif)
        if dropped:
            warnings.warn(f"{path}: the 16-bit colour TIFF encoder writes the EXIF text tags of IFD0 only; not "
                          f"written: {dropped}", stacklevel=2)
        return atomic_write(path, lambda handle: write_tiff(handle, rows, icc_profile, dpi, text))
    array = np.asarray(rows[0 : rows.shape[0]])
    return atomic_write_bytes(path, _pillow_encode(array, fmt, icc_profile, exif, quality, dpi, path))


def _pillow_encode(array: np.ndarray, fmt: OutputFormat, icc: bytes | None, exif: bytes | None,
                   quality: int | None, dpi: tuple[float, float] | None = None, path: Path | None = None) -> bytes:
    channels = array.shape[2]
    im = PILImage.fromarray(array[..., 0] if channels == 1 else array)  # L, LA, RGB, RGBA or I;16
    options: dict = {"icc_profile": icc} if icc else {}
    if exif and fmt is _TIFF:  # libtiff cannot take sub-IFDs (Exif, GPS) this way: IFD0's own tags only
        exif, dropped = pillow_tiff_exif(exif)
        if dropped:
            warnings.warn(f"{path}: EXIF sub-IFDs are not written to TIFF files: {dropped}", stacklevel=3)
    if exif:
        options["exif"] = exif
    if dpi and fmt is not _WEBP:
        options["dpi"] = dpi
    if fmt is _TIFF:
        options["compression"] = "tiff_deflate"
    elif fmt is _JPEG:
        options.update(quality=95 if quality is None else quality, subsampling=0)
    elif fmt is _WEBP:
        options.update({"lossless": True, "exact": True} if quality is None else {"quality": quality})
    buffer = io.BytesIO()
    im.save(buffer, format=fmt.name, **options)
    return buffer.getvalue()
