"""Decoding files into :class:`~flowprior.io.image.Image` (see :mod:`flowprior.io` for the formats and
conventions): Pillow for most, OpenCV for 16-bit colour; EXIF orientation applied, CMYK converted to sRGB."""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from flowprior.io.codecs import EXIF_HEADER, apply_orientation, png_data_problem, reset_orientation
from flowprior.io.image import Header, Image, ImageReadError, float_planes

_READ_FORMATS = ("PNG", "JPEG", "TIFF", "WEBP", "BMP")  # JPEG also opens camera MPO files


# TIFF tags that describe the pixel layout of *that* file; never carried to another file as "EXIF".
_TIFF_STRUCTURE_TAGS = frozenset(
    {254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 280, 281, 284, 317, 318, 319, 320, 322, 323,
     324, 325, 338, 339, 340, 341, 530, 531, 532, 34377, 34675}
)  # fmt: skip


def read_image(path: str | os.PathLike, lazy: bool = False, accept_truncated: bool = False) -> Image:
    """Read an image file (see the module docstring for formats and conventions).

    Args:
        path: the file.
        lazy: keep the decoded uint samples (``Image.samples``) and convert rows to floats on demand
            (:meth:`Image.rows`) instead of filling ``pixels`` and ``alpha``.
        accept_truncated: read a file whose data ends early (a PNG with fewer rows than its header says, a cut
            JPEG) instead of refusing it; the missing pixels are black (gray for JPEG) and ``Image.truncated`` is set.

    Raises:
        ImageReadError: when the file is missing, empty, truncated (unless accepted), corrupt or of an unsupported
            kind.

    Example:
        >>> img = read_image("flowprior/examples/astronaut.png")
        >>> img.pixels.shape, img.bit_depth
        (torch.Size([1, 3, 192, 192]), 8)
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageReadError(f"cannot read image {path}: no such file") from None
    except OSError as error:  # a directory, no permission, ...
        raise ImageReadError(f"cannot read image {path}: {error.strerror or error}") from None
    if not data:
        raise ImageReadError(f"cannot read image {path}: the file is empty")
    problem = png_data_problem(data)
    if problem and not accept_truncated:
        raise ImageReadError(f"cannot read image {path}: truncated: {problem} (--accept-truncated restores it "
                             "with the missing rows black)")
    try:
        image = _open_and_decode(data, path, lazy, accept_truncated)
        image.truncated = image.truncated or bool(problem)
        return image
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(f"cannot read image {path}: not a PNG, JPEG, TIFF, WebP or BMP file") from None
    except (
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        struct.error,
        PILImage.DecompressionBombError,
    ) as error:
        raise ImageReadError(f"cannot read image {path}: {error}") from error


def _open_and_decode(data: bytes, path: Path, lazy: bool, accept_truncated: bool) -> Image:
    """Decode; a file that ends early raises, or with ``accept_truncated`` is decoded again with Pillow's
    ``LOAD_TRUNCATED_IMAGES`` (the missing part filled) and marked ``truncated``."""
    from PIL import ImageFile

    try:
        with PILImage.open(io.BytesIO(data), formats=_READ_FORMATS) as im:
            return _decode(im, data, path, lazy)
    except OSError as error:
        if not accept_truncated or "truncated" not in str(error):
            raise
    previous, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, True
    try:
        with PILImage.open(io.BytesIO(data), formats=_READ_FORMATS) as im:
            image = _decode(im, data, path, lazy)
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous
    image.truncated = True
    return image


def _dpi(info: dict) -> tuple[float, float] | None:
    """(x, y) pixels per inch from Pillow's ``info["dpi"]``, or None when absent or zero."""
    try:
        x, y = (float(v) for v in info.get("dpi") or ())
    except (TypeError, ValueError):
        return None
    return (x, y) if x > 0 and y > 0 else None


def _decode(im: PILImage.Image, data: bytes, path: Path, lazy: bool = False) -> Image:
    fmt, mode = im.format, im.mode
    rawmode = _tile_rawmode(im)  # Pillow empties im.tile on load, so look first
    im.load()  # decodes everything now: a truncated file fails here, not later
    icc = im.info.get("icc_profile") or None
    exif_ifd = im.getexif()
    try:
        orientation = int(exif_ifd.get(0x0112, 1))
    except (TypeError, ValueError):
        orientation = 1
    exif = _tiff_exif(exif_ifd) if fmt == "TIFF" else _raw_exif(im.info.get("exif"))

    if ";16" in rawmode and mode in ("RGB", "RGBA", "LA"):
        array, colour = _decode_16bit_colour(data, rawmode, path)
    else:
        array, colour, cmyk = _pil_array(im, icc, path)
        if cmyk:
            icc = None
    bit_depth = 16 if array.dtype == np.uint16 else 8
    array = apply_orientation(array, orientation)
    dpi = _dpi(im.info)
    if orientation in (5, 6, 7, 8) and dpi:
        dpi = (dpi[1], dpi[0])  # the pixels were turned a quarter
    if lazy:
        return Image(None, None, bit_depth, mode, icc, exif, fmt, path, samples=array, dpi=dpi)
    pixels = float_planes(array[..., :colour])
    alpha = float_planes(array[..., colour:]) if array.shape[2] > colour else None
    return Image(pixels, alpha, bit_depth, mode, icc, exif, fmt, path, dpi=dpi)


def read_header(path: str | os.PathLike) -> Header | None:
    """The upright size, channels and bit depth :func:`read_image` would give, from the header only; None when the
    header cannot be read (the file then fails when it is read)."""
    try:
        with PILImage.open(path, formats=_READ_FORMATS) as im:
            width, height = im.size
            mode, rawmode, transparent = im.mode, _tile_rawmode(im), "transparency" in im.info
            # A PNG's getexif decodes the whole image to reach an eXIf chunk after the data: a header read only
            # looks at one before it (an orientation stored after the data is missed here, not by read_image).
            seen = im.format != "PNG" or "exif" in im.info
            orientation = im.getexif().get(0x0112, 1) if seen else 1
    except Exception:  # noqa: BLE001 - any unreadable header
        return None
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    wide = ";16" in rawmode or mode.startswith("I")
    gray = mode in ("1", "L", "LA", "La", "I") or mode.startswith("I;16")
    alpha = mode in ("LA", "La", "RGBA", "RGBa", "PA") or (mode in ("L", "P", "RGB") and transparent)
    return Header(height, width, 1 if gray else 3, alpha, 16 if wide else 8)


def _tile_rawmode(im: PILImage.Image) -> str:
    for tile in im.tile:
        args = tile[3]
        if isinstance(args, str):
            return args
        if isinstance(args, tuple) and args and isinstance(args[0], str):
            return args[0]
    return ""


def _pil_array(im: PILImage.Image, icc: bytes | None, path: Path) -> tuple[np.ndarray, int, bool]:
    """(H, W, C) uint array, number of colour channels, whether it was CMYK."""
    mode = im.mode
    transparent = "transparency" in im.info
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(im).astype(np.uint16)[..., None], 1, False
    if mode == "I":  # Pillow's 32-bit integer mode; 16-bit data sometimes arrives this way
        array = np.asarray(im)
        if array.min() < 0 or array.max() > 65535:
            raise ImageReadError(f"cannot read image {path}: 32-bit integer samples are not supported")
        return array.astype(np.uint16)[..., None], 1, False
    if mode == "F":
        raise ImageReadError(f"cannot read image {path}: floating-point samples are not supported")
    if mode == "CMYK":
        return np.asarray(_cmyk_to_rgb(im, icc)), 3, True
    if mode == "1":
        im = im.convert("L")
    elif mode == "La" or (mode == "L" and transparent):
        im = im.convert("LA")
    elif mode in ("PA", "RGBa") or (mode in ("P", "RGB") and transparent):
        im = im.convert("RGBA")
    elif mode not in ("L", "LA", "RGB", "RGBA"):  # P without transparency, RGBX, YCbCr, LAB, HSV, ...
        im = im.convert("RGB")
    array = np.asarray(im)
    array = array[..., None] if array.ndim == 2 else array
    return array, 1 if im.mode in ("L", "LA") else 3, False


def _cmyk_to_rgb(im: PILImage.Image, icc: bytes | None) -> PILImage.Image:
    if icc:
        from PIL import ImageCms

        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(im, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # an unusable or non-CMYK profile: fall back to the naive conversion below
    return im.convert("RGB")


def _decode_16bit_colour(data: bytes, rawmode: str, path: Path) -> tuple[np.ndarray, int]:
    import cv2

    array = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None or array.dtype != np.uint16 or array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ImageReadError(f"cannot read image {path}: unsupported 16-bit layout {rawmode!r}")
    if rawmode.startswith("LA"):  # OpenCV expands gray+alpha to BGRA with B = G = R
        return np.ascontiguousarray(array[..., [0, 3]]), 1
    order = [2, 1, 0, 3] if array.shape[2] == 4 else [2, 1, 0]
    return np.ascontiguousarray(array[..., order]), 3


def _raw_exif(raw: bytes | None) -> bytes | None:
    if not raw:
        return None
    return reset_orientation(raw if raw.startswith(EXIF_HEADER) else EXIF_HEADER + raw)


def _tiff_exif(ifd: PILImage.Exif) -> bytes | None:
    try:
        for tag in [t for t in ifd if t in _TIFF_STRUCTURE_TAGS]:
            del ifd[tag]
        if 0x0112 in ifd:
            ifd[0x0112] = 1
        return ifd.tobytes() if len(ifd) else None
    except (OSError, ValueError, KeyError, struct.error):
        return None  # metadata is best effort; the pixels were read fine
