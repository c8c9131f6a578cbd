"""Image files in and out: the only module that knows file formats, bit depths, EXIF, ICC profiles and alpha.

Reading (:func:`read_image`) gives an :class:`Image` whose ``pixels`` are a float32 tensor (1, C, H, W) in [0, 1]:

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

Quantization (:func:`to_uint` / :func:`from_uint`): ``q = round(clip(x, 0, 1) * (2**b - 1))`` with ties to even,
computed in float64, and ``x = q / (2**b - 1)``; reading then writing at the same bit depth is bit-exact.
"""

from __future__ import annotations

import io
import os
import secrets
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image as PILImage
from PIL import UnidentifiedImageError
from torch import Tensor

from flowprior._io_codecs import EXIF_HEADER, apply_orientation, encode_png, encode_tiff, reset_orientation

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
        pixels: float32 (1, C, H, W) in [0, 1], C = 1 (grayscale) or 3 (RGB), upright (EXIF orientation applied).
        alpha: float32 (1, 1, H, W) in [0, 1], or None.
        bit_depth: 8 or 16, the sample depth of the file.
        mode: the Pillow mode of the file as stored (e.g. ``"RGB"``, ``"I;16"``, ``"P"``, ``"CMYK"``).
        icc_profile: the embedded ICC profile bytes, or None.
        exif: EXIF bytes (``b"Exif\\0\\0"`` + TIFF blob, orientation reset to 1), or None.
        format: the Pillow format name (``"PNG"``, ``"JPEG"``, ``"MPO"``, ``"TIFF"``, ``"WEBP"``, ``"BMP"``).
        path: where it was read from.
    """

    pixels: Tensor
    alpha: Tensor | None
    bit_depth: int
    mode: str
    icc_profile: bytes | None
    exif: bytes | None
    format: str
    path: Path


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
    x = pixels.detach().to("cpu", torch.float64).numpy()
    if np.isnan(x).any():
        raise ValueError("cannot quantize pixels that contain NaN")
    q = np.rint(np.clip(x, 0.0, 1.0) * float(2**bit_depth - 1))
    return q.astype(np.uint8 if bit_depth == 8 else np.uint16)


def from_uint(array: np.ndarray) -> Tensor:
    """uint8/uint16 array → float32 tensor ``q / (2**b - 1)`` (b from the dtype), same shape. Inverse of to_uint."""
    if array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected a uint8 or uint16 array, got {array.dtype}")
    return torch.from_numpy(array.astype(np.float64) / float(np.iinfo(array.dtype).max)).to(torch.float32)


# --------------------------------------------------------------------------------------------------- reading


def read_image(path: str | os.PathLike) -> Image:
    """Read an image file (see the module docstring for formats and conventions).

    Raises:
        ImageReadError: when the file is missing, empty, truncated, corrupt or of an unsupported kind.

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
    try:
        with PILImage.open(io.BytesIO(data), formats=_READ_FORMATS) as im:
            return _decode(im, data, path)
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


def _decode(im: PILImage.Image, data: bytes, path: Path) -> Image:
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
    pixels = from_uint(array[..., :colour]).permute(2, 0, 1).unsqueeze(0).contiguous()
    alpha = None
    if array.shape[2] > colour:
        alpha = from_uint(array[..., colour:]).permute(2, 0, 1).unsqueeze(0).contiguous()
    return Image(pixels, alpha, bit_depth, mode, icc, exif, fmt, path)


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

    Returns:
        The path written.

    Raises:
        ValueError: unsupported suffix, bit depth or alpha for the format, bad shapes, NaN pixels.
        FileNotFoundError: the destination directory does not exist.
    """
    path = Path(path)
    fmt = output_format(path)
    if bit_depth not in fmt.bit_depths:
        depths = " or ".join(map(str, fmt.bit_depths))
        raise ValueError(f"cannot write {path}: {fmt.name} stores {depths}-bit samples, not {bit_depth}-bit")
    if alpha is not None and not fmt.alpha:
        raise ValueError(f"cannot write {path}: {fmt.name} has no alpha channel; use .png, .tif or .webp")
    if quality is not None and (not fmt.lossy or not 1 <= quality <= 100):
        raise ValueError(f"cannot write {path}: quality must be 1-100 and only applies to JPEG/WebP")
    array = _to_hwc(pixels, alpha, bit_depth)
    atomic_write_bytes(path, _encode(array, fmt, icc_profile, exif, quality, path))
    return path


def _to_hwc(pixels: Tensor, alpha: Tensor | None, bit_depth: int) -> np.ndarray:
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


def _encode(
    array: np.ndarray,
    fmt: OutputFormat,
    icc: bytes | None,
    exif: bytes | None,
    quality: int | None,
    path: Path,
) -> bytes:
    if exif and not exif.startswith(EXIF_HEADER):
        exif = EXIF_HEADER + exif
    channels = array.shape[2]
    if fmt is _PNG:
        return encode_png(array, icc, exif)
    if fmt is _TIFF and array.dtype == np.uint16 and channels > 1:
        if channels == 2:  # Pillow and OpenCV cannot read 2-channel 16-bit TIFF: store gray+alpha as RGBA
            array = array[..., [0, 0, 0, 1]]
        if exif:
            warnings.warn(f"{path}: EXIF is not written to 16-bit colour TIFF files", stacklevel=3)
        return encode_tiff(array, icc)
    im = PILImage.fromarray(array[..., 0] if channels == 1 else array)  # L, LA, RGB, RGBA or I;16
    options: dict = {"icc_profile": icc} if icc else {}
    if exif:
        options["exif"] = exif
    if fmt is _TIFF:
        options["compression"] = "tiff_deflate"
    elif fmt is _JPEG:
        options.update(quality=95 if quality is None else quality, subsampling=0)
    elif fmt is _WEBP:
        options.update({"lossless": True, "exact": True} if quality is None else {"quality": quality})
    buffer = io.BytesIO()
    im.save(buffer, format=fmt.name, **options)
    return buffer.getvalue()


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
    """Write ``data`` to ``path`` via a temporary file in the same directory and ``os.replace``.

    Readers never see a half-written file; the file gets the usual permissions (0o666 minus the umask).

    Raises:
        FileNotFoundError: the directory does not exist.
        IsADirectoryError: ``path`` is a directory.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: the directory {path.parent} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a directory")
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
