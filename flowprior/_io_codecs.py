"""Byte-level helpers behind :mod:`flowprior.io` (private; nothing else should import this module).

Pillow keeps 16-bit colour images only as 8-bit in memory, so the 16-bit colour/alpha encoders live here:

* :func:`encode_png` - a small PNG encoder (colour types 0/2/4/6 at 8 or 16 bits) with ``iCCP`` and ``eXIf``
  chunks, per-row adaptive filtering (the libpng "minimum sum of absolute differences" heuristic).
* :func:`encode_tiff` - a baseline TIFF encoder (Deflate + horizontal predictor) with the ICC tag.

and the EXIF orientation helpers shared by every decode path.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

EXIF_HEADER = b"Exif\x00\x00"
ORIENTATION_TAG = 0x0112

# ---------------------------------------------------------------------------------------------------------- PNG

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> colour type (gray, gray+alpha, RGB, RGBA)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


_FILTER_COST = np.minimum(np.arange(256), 256 - np.arange(256)).astype(np.uint8)  # |byte read as signed|


def _filter_rows(raw: np.ndarray, bpp: int) -> np.ndarray:
    """PNG-filter every row of ``raw`` ((H, rowbytes) uint8) and prepend the filter byte.

    All five filters are computed for all rows at once (they depend on the *unfiltered* neighbours only), and each
    row keeps the one with the smallest sum of absolute values read as signed bytes (libpng's heuristic).
    """
    left = np.zeros_like(raw)
    left[:, bpp:] = raw[:, :-bpp]
    up = np.zeros_like(raw)
    up[1:] = raw[:-1]
    up_left = np.zeros_like(raw)
    up_left[1:, bpp:] = raw[:-1, :-bpp]
    a, b, c = left.astype(np.int16), up.astype(np.int16), up_left.astype(np.int16)
    pa, pb, pc = (
        np.abs(b - c),
        np.abs(a - c),
        np.abs(a + b - 2 * c),
    )  # |p - a|, |p - b|, |p - c| for p = a + b - c
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, up_left))
    average = ((a + b) >> 1).astype(np.uint8)
    best = raw.copy()  # filter 0 (none); uint8 arithmetic below wraps modulo 256 as PNG specifies
    best_cost = _FILTER_COST[raw].sum(axis=1, dtype=np.int64)
    choice = np.zeros(raw.shape[0], dtype=np.uint8)
    for kind, predictor in enumerate((left, up, average, paeth), start=1):
        candidate = raw - predictor
        cost = _FILTER_COST[candidate].sum(axis=1, dtype=np.int64)
        better = cost < best_cost
        best[better], best_cost[better], choice[better] = candidate[better], cost[better], kind
    return np.concatenate([choice[:, None], best], axis=1)


def encode_png(array: np.ndarray, icc_profile: bytes | None = None, exif: bytes | None = None) -> bytes:
    """Encode an (H, W, C) uint8/uint16 array, C in 1..4 (gray, gray+alpha, RGB, RGBA), as PNG bytes."""
    h, w, c = array.shape
    depth = 16 if array.dtype == np.uint16 else 8
    samples = array.astype(">u2") if depth == 16 else array.astype(np.uint8)
    raw = np.frombuffer(samples.tobytes(), dtype=np.uint8).reshape(h, w * c * depth // 8)
    out = [
        _PNG_SIGNATURE,
        _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, _PNG_COLOUR_TYPE[c], 0, 0, 0)),
    ]
    if icc_profile:
        out.append(_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc_profile)))
    if exif:
        out.append(_chunk(b"eXIf", exif.removeprefix(EXIF_HEADER)))  # the PNG chunk holds the bare TIFF blob
    out.append(_chunk(b"IDAT", zlib.compress(_filter_rows(raw, c * depth // 8).tobytes(), 6)))
    out.append(_chunk(b"IEND", b""))
    return b"".join(out)


# --------------------------------------------------------------------------------------------------------- TIFF

_SHORT, _LONG, _UNDEFINED = 3, 4, 7
_TYPE_FORMAT = {_SHORT: "H", _LONG: "I", _UNDEFINED: "B"}


def encode_tiff(array: np.ndarray, icc_profile: bytes | None = None) -> bytes:
    """Encode an (H, W, C) uint8/uint16 array, C in 1..4, as a little-endian baseline TIFF.

    Deflate compression with the horizontal-differencing predictor (tag 317 = 2), strips of about 256 KiB,
    ``ExtraSamples = 2`` (unassociated alpha) for 2 or 4 channels, and the ICC profile in tag 34675.
    """
    h, w, c = array.shape
    depth = 16 if array.dtype == np.uint16 else 8
    dtype = np.dtype("<u2") if depth == 16 else np.dtype(np.uint8)
    samples = array.astype(dtype)
    diff = samples.copy()
    diff[:, 1:] = samples[:, 1:] - samples[:, :-1]  # modular (unsigned) differences, as predictor 2 defines
    row_bytes = w * c * dtype.itemsize
    rows_per_strip = max(1, (1 << 18) // row_bytes)
    strips = [zlib.compress(diff[y : y + rows_per_strip].tobytes(), 6) for y in range(0, h, rows_per_strip)]

    tags: list[tuple[int, int, list[int] | bytes]] = [
        (256, _LONG, [w]),
        (257, _LONG, [h]),
        (258, _SHORT, [depth] * c),
        (259, _SHORT, [8]),  # Adobe Deflate
        (262, _SHORT, [2 if c >= 3 else 1]),  # RGB or BlackIsZero
        (273, _LONG, [0] * len(strips)),  # strip offsets, filled in below
        (277, _SHORT, [c]),
        (278, _LONG, [rows_per_strip]),
        (279, _LONG, [len(s) for s in strips]),
        (284, _SHORT, [1]),  # chunky (interleaved) samples
        (317, _SHORT, [2]),
    ]
    if c in (2, 4):
        tags.append((338, _SHORT, [2]))
    tags.append((339, _SHORT, [1] * c))  # unsigned integer samples
    if icc_profile:
        tags.append((34675, _UNDEFINED, icc_profile))

    layout = [
        (
            tag,
            kind,
            len(v),
            bytes(v) if kind == _UNDEFINED else struct.pack(f"<{len(v)}{_TYPE_FORMAT[kind]}", *v),
        )
        for tag, kind, v in tags
    ]
    values_at = 8 + 2 + 12 * len(layout) + 4  # header, then the IFD, then out-of-line values, then strips
    data_at = values_at + sum(
        len(p) + len(p) % 2 for *_, p in layout if len(p) > 4
    )  # values stay word-aligned
    offsets = np.cumsum([data_at] + [len(s) for s in strips[:-1]]).tolist()
    layout = [(t, k, n, struct.pack(f"<{n}I", *offsets) if t == 273 else p) for t, k, n, p in layout]

    entries, blobs, cursor = [], [], values_at
    for tag, kind, n, payload in layout:
        if len(payload) > 4:
            entries.append(struct.pack("<HHII", tag, kind, n, cursor))
            blobs.append(payload + b"\x00" * (len(payload) % 2))
            cursor += len(blobs[-1])
        else:
            entries.append(struct.pack("<HHI", tag, kind, n) + payload.ljust(4, b"\x00"))
    header = b"II*\x00" + struct.pack("<I", 8)
    ifd = struct.pack("<H", len(entries)) + b"".join(entries) + struct.pack("<I", 0)
    return header + ifd + b"".join(blobs) + b"".join(strips)


# --------------------------------------------------------------------------------------------------------- EXIF


def apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Transform an (H, W, ...) array stored with EXIF ``orientation`` (1-8) into its upright layout.

    Same result as ``PIL.ImageOps.exif_transpose`` (checked for all eight values in the tests).
    """
    if orientation == 2:
        out = array[:, ::-1]
    elif orientation == 3:
        out = array[::-1, ::-1]
    elif orientation == 4:
        out = array[::-1]
    elif orientation == 5:
        out = array.swapaxes(0, 1)
    elif orientation == 6:
        out = np.rot90(array, k=-1)
    elif orientation == 7:
        out = np.rot90(array, k=2).swapaxes(0, 1)
    elif orientation == 8:
        out = np.rot90(array, k=1)
    else:  # 1 or an invalid value: leave the pixels as stored
        out = array
    return np.ascontiguousarray(out)


def reset_orientation(exif: bytes) -> bytes:
    """Return ``exif`` (a TIFF blob, optionally prefixed by ``Exif\\0\\0``) with the IFD0 orientation set to 1.

    The two value bytes are patched in place rather than re-serializing the whole block, so maker notes and other
    offset-sensitive data stay valid. A blob without an orientation entry is returned unchanged.
    """
    start = len(EXIF_HEADER) if exif.startswith(EXIF_HEADER) else 0
    order = exif[start : start + 2]
    if order not in (b"II", b"MM") or len(exif) < start + 8:
        return exif
    end = "<" if order == b"II" else ">"
    (ifd,) = struct.unpack_from(end + "I", exif, start + 4)
    pos = start + ifd
    if pos + 2 > len(exif):
        return exif
    (count,) = struct.unpack_from(end + "H", exif, pos)
    for i in range(count):
        entry = pos + 2 + 12 * i
        if entry + 12 > len(exif):
            break
        tag, kind, n = struct.unpack_from(end + "HHI", exif, entry)
        if tag == ORIENTATION_TAG and kind == _SHORT and n == 1:
            patched = bytearray(exif)
            struct.pack_into(end + "H", patched, entry + 8, 1)
            return bytes(patched)
    return exif
