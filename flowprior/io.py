"""Image files in and out: the only module that knows file formats, bit depths, EXIF, ICC profiles and alpha.

Reading (:func:`read_image`) gives an :class:`Image` whose ``pixels`` are a float32 tensor (1, C, H, W) in [0, 1]
(with ``lazy=True`` it keeps the decoded 8/16-bit samples instead and converts rows on demand, :meth:`Image.rows`:
a 50-megapixel RGB scan then holds 150 MB of samples rather than 600 MB of floats):

* PNG, JPEG (also camera "MPO" JPEGs), TIFF, WebP and BMP; multi-frame files give their first frame.
* 8- and 16-bit samples. Pillow decodes 16-bit *colour* PNG/TIFF only to 8 bits, so those are decoded with
  OpenCV (``IMREAD_UNCHANGED``, converted from BGR(A) to RGB(A)); everything else goes through Pillow.
* Grayscale stays one channel (C = 1); colour is RGB (C = 3). Alpha is returned separately, untouched, as
  (1, 1, H, W); palette images become RGB, or RGBA when they have transparency (likewise gray/RGB with a
  ``tRNS`` colour key).
* CMYK is converted to sRGB explicitly: through its embedded ICC profile with LittleCMS (perceptual intent) when
  it has one, else with Pillow's naive ``R = 255 - C - K`` style conversion. The CMYK profile is then dropped
  (``icc_profile`` is None: untagged, i.e. sRGB) because it no longer describes the pixels.
* The EXIF orientation is applied to the pixels, and the orientation tag in the returned ``exif`` is reset to 1
  (the other EXIF bytes are kept verbatim). ``exif`` always starts with ``b"Exif\\0\\0"``. For TIFF input it is
  rebuilt from the descriptive IFD0 tags (image-structure tags are dropped).

Writing (:func:`write_image`): PNG and TIFF at 8 or 16 bits, JPEG and WebP at 8 bits. ICC bytes and EXIF are
embedded (except EXIF in 16-bit colour TIFF, which the TIFF encoder here does not write; a warning says so).
WebP has no grayscale, so gray is stored as RGB there; 16-bit gray+alpha TIFF is stored as RGBA because neither
Pillow nor OpenCV reads 2-channel 16-bit TIFF. PNG is encoded by ``flowprior._io_codecs`` at every bit depth (one
code path for the ``iCCP``/``eXIf`` chunks), and so is 16-bit colour TIFF; the rest goes through Pillow.
Files are written atomically: to a temporary file in the same directory, then ``os.replace``.
:func:`write_array` writes already quantized samples given as rows (a numpy array, a :class:`RowStore` filled band
by band, or :class:`LazyRows`); PNG and 16-bit colour TIFF are then encoded a block of rows at a time.

Quantization (:func:`to_uint` / :func:`from_uint`): ``q = round(clip(x, 0, 1) * (2**b - 1))`` with ties to even,
computed in float64, and ``x = q / (2**b - 1)``; reading then writing at the same bit depth is bit-exact.
"""

from __future__ import annotations

import functools
import io
import os
import secrets
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image as PILImage
from PIL import UnidentifiedImageError
from torch import Tensor

from flowprior._io_codecs import (
    EXIF_HEADER,
    apply_orientation,
    png_data_problem,
    reset_orientation,
    write_png,
    write_tiff,
)
from flowprior._io_metadata import pillow_tiff_exif, tiff_text_tags

_READ_FORMATS = ("PNG", "JPEG", "TIFF", "WEBP", "BMP")  # JPEG also opens camera MPO files
# TIFF tags that describe the pixel layout of *that* file; never carried to another file as "EXIF".
_TIFF_STRUCTURE_TAGS = frozenset(
    {254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 280, 281, 284, 317, 318, 319, 320, 322, 323,
     324, 325, 338, 339, 340, 341, 530, 531, 532, 34377, 34675}
)  # fmt: skip


class ImageReadError(ValueError):
    """A file that is missing, empty, truncated or not a supported image. The message names the path."""


@dataclass
class Image:
    """A decoded image and the metadata needed to write it back faithfully.

    Attributes:
        pixels: float32 (1, C, H, W) in [0, 1], C = 1 (grayscale) or 3 (RGB), upright (EXIF orientation applied);
            None when read with ``lazy=True`` (use :meth:`rows`).
        alpha: float32 (1, 1, H, W) in [0, 1], or None (also when lazy: see :attr:`has_alpha`, :meth:`alpha_rows`).
        bit_depth: 8 or 16, the sample depth of the file.
        mode: the Pillow mode of the file as stored (e.g. ``"RGB"``, ``"I;16"``, ``"P"``, ``"CMYK"``).
        icc_profile: the embedded ICC profile bytes, or None.
        exif: EXIF bytes (``b"Exif\\0\\0"`` + TIFF blob, orientation reset to 1), or None.
        format: the Pillow format name (``"PNG"``, ``"JPEG"``, ``"MPO"``, ``"TIFF"``, ``"WEBP"``, ``"BMP"``).
        path: where it was read from.
        samples: lazy reads only: the decoded (H, W, C [+ 1 alpha]) uint8/uint16 samples, upright.
        dpi: (horizontal, vertical) pixels per inch as stored (PNG pHYs, JFIF/EXIF, TIFF resolution), or None.
        truncated: the file's data ended early and was read anyway (``accept_truncated``); missing rows are black.
    """

    pixels: Tensor | None
    alpha: Tensor | None
    bit_depth: int
    mode: str
    icc_profile: bytes | None
    exif: bytes | None
    format: str
    path: Path
    samples: np.ndarray | None = None
    dpi: tuple[float, float] | None = None
    truncated: bool = False

    @property
    def channels(self) -> int:
        """Colour channels: 1 or 3."""
        return self.pixels.shape[1] if self.pixels is not None else self.samples.shape[2] - self.has_alpha

    @property
    def size(self) -> tuple[int, int]:
        """(H, W)."""
        return tuple(self.pixels.shape[-2:]) if self.pixels is not None else self.samples.shape[:2]

    @property
    def has_alpha(self) -> bool:
        if self.samples is not None:
            return self.samples.shape[2] in (2, 4)
        return self.alpha is not None

    def rows(self, start: int, stop: int) -> Tensor:
        """float32 (1, C, stop - start, W): the same values as ``pixels[..., start:stop, :]``."""
        if self.pixels is not None:
            return self.pixels[..., start:stop, :]
        return _planes(self.samples[start:stop, :, : self.channels])

    def alpha_rows(self, start: int, stop: int) -> Tensor | None:
        """float32 (1, 1, stop - start, W) or None: the same values as ``alpha[..., start:stop, :]``."""
        if self.samples is None:
            return None if self.alpha is None else self.alpha[..., start:stop, :]
        return _planes(self.samples[start:stop, :, self.channels :]) if self.has_alpha else None


def _planes(samples: np.ndarray) -> Tensor:
    """(h, W, c) uint samples -> float32 (1, c, h, W) in [0, 1]."""
    return from_uint(samples).permute(2, 0, 1).unsqueeze(0).contiguous()


@dataclass(frozen=True)
class Header:
    """What a file's header says, before decoding: the upright size, the channels the decode gives, bit depth."""

    height: int
    width: int
    channels: int  # colour channels, 1 or 3
    alpha: bool
    bit_depth: int


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


# ---------------------------------------------------------------------------------------------- quantization


def to_uint(pixels: Tensor, bit_depth: int = 8) -> np.ndarray:
    """Quantize [0, 1] floats to uint8/uint16: ``round(clip(x, 0, 1) * (2**bit_depth - 1))``, ties to even.

    Args:
        pixels: any shape; values outside [0, 1] are clipped.
        bit_depth: 8 or 16.

    Returns:
        A numpy array of the same shape, dtype uint8 or uint16.

    Raises:
        ValueError: for another bit depth or NaN values.
    """
    if bit_depth not in (8, 16):
        raise ValueError(f"bit depth must be 8 or 16, got {bit_depth}")
    x = pixels.detach().to("cpu", torch.float64, copy=True).numpy()
    if np.isnan(x).any():
        raise ValueError("cannot quantize pixels that contain NaN")
    np.clip(x, 0.0, 1.0, out=x)  # in place: one float64 copy of the pixels, not four
    x *= float(2**bit_depth - 1)
    return np.rint(x, out=x).astype(np.uint8 if bit_depth == 8 else np.uint16)


def from_uint(array: np.ndarray) -> Tensor:
    """uint8/uint16 array → float32 tensor ``q / (2**b - 1)`` (b from the dtype), same shape. Inverse of to_uint."""
    if array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected a uint8 or uint16 array, got {array.dtype}")
    return torch.from_numpy(_levels(array.dtype)[array])  # a table of q / (2**b - 1): no float64 copy


@functools.cache
def _levels(dtype: np.dtype) -> np.ndarray:
    """float32 ``q / (2**b - 1)`` (divided in float64, then rounded) for every level q of the dtype."""
    top = np.iinfo(dtype).max
    return (np.arange(top + 1, dtype=np.float64) / float(top)).astype(np.float32)


# --------------------------------------------------------------------------------------------------- reading


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
    pixels = _planes(array[..., :colour])
    alpha = _planes(array[..., colour:]) if array.shape[2] > colour else None
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


# --------------------------------------------------------------------------------------------------- writing


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


def to_hwc(pixels: Tensor, alpha: Tensor | None, bit_depth: int) -> np.ndarray:
    """(1, C, H, W) or (C, H, W) pixels [+ (1, 1, H, W) alpha] in [0, 1] -> (H, W, C [+ 1]) uint samples."""
    pixels = pixels[0] if pixels.dim() == 4 and pixels.shape[0] == 1 else pixels
    if pixels.dim() != 3 or pixels.shape[0] not in (1, 3):
        raise ValueError(
            f"pixels must be (1, C, H, W) or (C, H, W) with C = 1 or 3, got {tuple(pixels.shape)}"
        )
    planes = [pixels]
    if alpha is not None:
        alpha = alpha[0] if alpha.dim() == 4 and alpha.shape[0] == 1 else alpha
        if tuple(alpha.shape) != (1, *pixels.shape[1:]):
            raise ValueError(f"alpha must be (1, 1, H, W) matching the pixels, got {tuple(alpha.shape)}")
        planes.append(alpha.to(pixels.device))
    return np.ascontiguousarray(to_uint(torch.cat(planes), bit_depth).transpose(1, 2, 0))


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


class LazyRows:
    """(H, W, C) samples computed a block of rows at a time: ``rows[y0:y1]`` calls ``read(y0, y1)``."""

    def __init__(self, shape: tuple[int, int, int], dtype, read: Callable[[int, int], np.ndarray]):
        self.shape, self.dtype, self.read = tuple(shape), np.dtype(dtype), read

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop, _ = rows.indices(self.shape[0])
        return self.read(start, stop)


class RowStore:
    """An (H, W, C) uint array filled and read in blocks of rows: in memory, or in a file.

    With ``file``, the samples live in that file (created, and deleted by :meth:`close`) and each access maps only
    its block of rows (``np.memmap`` with an offset), so the image does not stay resident: for an output that
    would not fit the memory budget. Use ``store[y0:y1] = block`` and ``store[y0:y1]``.
    """

    def __init__(self, shape: tuple[int, int, int], dtype, file: str | os.PathLike | None = None):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.file = None if file is None else Path(file)
        self.array = None
        if self.file is None:
            self.array = np.empty(self.shape, self.dtype)
        else:
            with open(self.file, "xb") as handle:
                handle.truncate(int(np.prod(self.shape)) * self.dtype.itemsize)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def _map(self, rows: slice, mode: str) -> np.memmap | None:
        start, stop, _ = rows.indices(self.shape[0])
        if stop <= start:
            return None
        row_bytes = self.shape[1] * self.shape[2] * self.dtype.itemsize
        return np.memmap(self.file, self.dtype, mode, offset=start * row_bytes, shape=(stop - start, *self.shape[1:]))

    def __getitem__(self, rows: slice) -> np.ndarray:
        if self.array is not None:
            return self.array[rows]
        view = self._map(rows, "r")
        return np.empty((0, *self.shape[1:]), self.dtype) if view is None else np.array(view)

    def __setitem__(self, rows: slice, block: np.ndarray) -> None:
        if self.array is not None:
            self.array[rows] = block
            return
        view = self._map(rows, "r+")
        if view is not None:
            view[...] = block
            view.flush()
            del view  # unmapped: written rows do not stay in this process's resident memory

    def close(self) -> None:
        """Free the samples (delete the file)."""
        self.array = None
        if self.file is not None:
            self.file.unlink(missing_ok=True)


PROCESSING_SOFTWARE_TAG = 0x000B  # EXIF/TIFF ProcessingSoftware: the software that post-processed the image


def set_exif_text(exif: bytes, tag: int, text: str) -> bytes:
    """Return ``exif`` with the IFD0 ASCII ``tag`` set to ``text`` (e.g. :data:`PROCESSING_SOFTWARE_TAG`).

    Every other byte keeps its offset: a new IFD0 (the old entries plus this one, in tag order) and the new value
    are *appended* and the header is pointed at it, so maker notes and sub-IFDs, whose offsets are absolute, stay
    valid. The old IFD0 is left as unreferenced bytes. A blob that is not a TIFF structure is returned unchanged.
    """
    head = len(EXIF_HEADER) if exif.startswith(EXIF_HEADER) else 0
    tiff = exif[head:]
    order = tiff[:2]
    if order not in (b"II", b"MM") or len(tiff) < 8:
        return exif
    end = "<" if order == b"II" else ">"
    (ifd,) = struct.unpack_from(end + "I", tiff, 4)
    if ifd + 2 > len(tiff):
        return exif
    (count,) = struct.unpack_from(end + "H", tiff, ifd)
    if ifd + 2 + 12 * count + 4 > len(tiff):
        return exif
    entries = [tiff[ifd + 2 + 12 * i : ifd + 14 + 12 * i] for i in range(count)]
    (next_ifd,) = struct.unpack_from(end + "I", tiff, ifd + 2 + 12 * count)
    value = text.encode("ascii", "replace") + b"\0"
    out = bytearray(tiff)
    out += b"\0" * (len(out) % 2)  # TIFF offsets are word aligned
    if len(value) <= 4:
        field = struct.pack(end + "HHI", tag, 2, len(value)) + value.ljust(4, b"\0")
    else:
        field = struct.pack(end + "HHI", tag, 2, len(value)) + struct.pack(end + "I", len(out))
        out += value + b"\0" * (len(value) % 2)
    entries = sorted([e for e in entries if struct.unpack_from(end + "H", e)[0] != tag] + [field],
                     key=lambda e: struct.unpack_from(end + "H", e)[0])
    new_ifd = len(out)
    out += struct.pack(end + "H", len(entries)) + b"".join(entries) + struct.pack(end + "I", next_ifd)
    struct.pack_into(end + "I", out, 4, new_ifd)
    return exif[:head] + bytes(out)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same directory and ``os.replace``
    (:func:`atomic_write`)."""
    return atomic_write(path, lambda handle: handle.write(data))


def temporary_path(path: str | os.PathLike) -> Path:
    """``.NAME.xxxxxxxx.tmp`` beside ``path``: the name every temporary file of an output has (a batch deletes the
    ones a killed run left)."""
    path = Path(path)
    return path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(handle)`` on a temporary file in the same directory, fsync it, then ``os.replace`` it to ``path``.

    Readers never see a half-written file; the file gets the usual permissions (0o666 minus the umask). The handle
    is seekable (the encoders fill in lengths after the data).

    Raises:
        FileNotFoundError: the directory does not exist.
        IsADirectoryError: ``path`` is a directory.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: the directory {path.parent} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a directory")
    tmp = temporary_path(path)
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "w+b") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
