"""Byte-level helpers behind :mod:`flowprior.io` (nothing outside the package should import this module).

Pillow keeps 16-bit colour images only as 8-bit in memory, so the 16-bit colour/alpha encoders live here:

* :func:`write_png` - a small PNG encoder (colour types 0/2/4/6 at 8 or 16 bits) with ``iCCP`` and ``eXIf``
  chunks, per-row adaptive filtering (the libpng "minimum sum of absolute differences" heuristic).
* :func:`write_tiff` - a baseline TIFF encoder (Deflate + horizontal predictor) with the ICC tag.

Both stream: they read the image in blocks of rows (``rows[y0:y1]`` of anything shaped (H, W, C) - a numpy array,
or a store that decodes or loads rows on demand) and write to a seekable file, so encoding needs memory for a
block of rows, not for the whole image. The bytes are the same as encoding the whole array at once
(:func:`encode_png`, :func:`encode_tiff`): one zlib stream fed in pieces compresses to the same bytes.

and the EXIF orientation helpers shared by every decode path.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import BinaryIO

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


def _filter_rows(raw: np.ndarray, bpp: int, above: np.ndarray | None = None) -> np.ndarray:
    """PNG-filter every row of ``raw`` ((H, rowbytes) uint8) and prepend the filter byte.

    ``above``: the unfiltered row before ``raw[0]`` (None for the image's first row). All five filters are computed
    for all rows at once (they depend on the *unfiltered* neighbours only), and each row keeps the one with the
    smallest sum of absolute values read as signed bytes (libpng's heuristic).
    """
    before = np.zeros_like(raw[:1]) if above is None else above[None]
    left = np.zeros_like(raw)
    left[:, bpp:] = raw[:, :-bpp]
    up = np.concatenate([before, raw[:-1]])
    up_left = np.zeros_like(raw)
    up_left[:, bpp:] = up[:, :-bpp]
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


_BLOCK_BYTES = 1 << 20  # raw bytes per block of rows that the streaming encoders hold at once


def _block_rows(row_bytes: int) -> int:
    return max(1, _BLOCK_BYTES // max(1, row_bytes))


def write_png(handle: BinaryIO, rows, icc_profile: bytes | None = None, exif: bytes | None = None,
              dpi: tuple[float, float] | None = None) -> None:
    """Encode ``rows`` ((H, W, C) uint8/uint16, C in 1..4: gray, gray+alpha, RGB, RGBA) as PNG into ``handle``.

    ``dpi`` (pixels per inch) goes into a ``pHYs`` chunk, which counts pixels per metre (rounded).

    The image data is one ``IDAT`` chunk whose length and CRC are filled in once the compressed stream is written
    (``handle`` must be seekable); rows are filtered and compressed a block at a time.
    """
    h, w, c = rows.shape
    depth = 16 if rows.dtype == np.uint16 else 8
    row_bytes = w * c * depth // 8
    handle.write(_PNG_SIGNATURE)
    handle.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, _PNG_COLOUR_TYPE[c], 0, 0, 0)))
    if icc_profile:
        handle.write(_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc_profile)))
    if exif:
        handle.write(_chunk(b"eXIf", exif.removeprefix(EXIF_HEADER)))  # the PNG chunk holds the bare TIFF blob
    if dpi:
        per_metre = [max(1, round(d / 0.0254)) for d in dpi]
        handle.write(_chunk(b"pHYs", struct.pack(">IIB", *per_metre, 1)))
    length_at = handle.tell()
    handle.write(b"\0\0\0\0IDAT")
    compressor, crc, length, above = zlib.compressobj(6), zlib.crc32(b"IDAT"), 0, None
    step = _block_rows(row_bytes)
    for y0 in range(0, h, step):
        block = rows[y0 : min(y0 + step, h)]
        samples = block.astype(">u2") if depth == 16 else block.astype(np.uint8, copy=False)
        raw = np.frombuffer(np.ascontiguousarray(samples).tobytes(), dtype=np.uint8).reshape(-1, row_bytes)
        data = compressor.compress(_filter_rows(raw, c * depth // 8, above).tobytes())
        above = raw[-1].copy()
        crc, length = zlib.crc32(data, crc), length + len(data)
        handle.write(data)
    data = compressor.flush()
    crc, length = zlib.crc32(data, crc), length + len(data)
    handle.write(data + struct.pack(">I", crc & 0xFFFFFFFF))
    end = handle.tell()
    handle.seek(length_at)
    handle.write(struct.pack(">I", length))
    handle.seek(end)
    handle.write(_chunk(b"IEND", b""))


def encode_png(array: np.ndarray, icc_profile: bytes | None = None, exif: bytes | None = None,
               dpi: tuple[float, float] | None = None) -> bytes:
    """Encode an (H, W, C) uint8/uint16 array, C in 1..4 (gray, gray+alpha, RGB, RGBA), as PNG bytes."""
    buffer = io.BytesIO()
    write_png(buffer, array, icc_profile, exif, dpi)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------------------- TIFF

_ASCII, _SHORT, _LONG, _RATIONAL, _UNDEFINED = 2, 3, 4, 5, 7
_TYPE_FORMAT = {_SHORT: "H", _LONG: "I", _RATIONAL: "I", _UNDEFINED: "B"}


def _metadata_tags(dpi: tuple[float, float] | None, text: list[tuple[int, bytes]] | None) -> list:
    """TIFF entries for the resolution (pixels per inch as a rational) and ASCII tags (NUL-terminated bytes)."""
    tags: list = [(tag, _ASCII, value) for tag, value in text or []]
    if dpi:
        for tag, value in zip((282, 283), dpi):
            tags.append((tag, _RATIONAL, [round(value * 10000), 10000]))
        tags.append((296, _SHORT, [2]))  # inches
    return tags


def write_tiff(handle: BinaryIO, rows, icc_profile: bytes | None = None, dpi: tuple[float, float] | None = None,
               text: list[tuple[int, bytes]] | None = None) -> None:
    """Encode ``rows`` ((H, W, C) uint8/uint16, C in 1..4) as a little-endian baseline TIFF into ``handle``.

    Deflate compression with the horizontal-differencing predictor (tag 317 = 2), strips of about 256 KiB,
    ``ExtraSamples = 2`` (unassociated alpha) for 2 or 4 channels, the ICC profile in tag 34675, the resolution
    (``dpi``) and ASCII tags (``text``: (tag, NUL-terminated bytes), e.g. Artist, Copyright). The header
    and directory come first; their strip offsets and sizes are filled in once the strips are written (``handle``
    must be seekable), one strip in memory at a time.
    """
    h, w, c = rows.shape
    depth = 16 if rows.dtype == np.uint16 else 8
    dtype = np.dtype("<u2") if depth == 16 else np.dtype(np.uint8)
    row_bytes = w * c * dtype.itemsize
    rows_per_strip = max(1, (1 << 18) // row_bytes)
    count = -(-h // rows_per_strip)
    origin = handle.tell()
    extra = _metadata_tags(dpi, text)
    header = _tiff_header(w, h, c, depth, rows_per_strip, [0] * count, [0] * count, icc_profile, extra)
    handle.write(header)
    sizes = []
    for y in range(0, h, rows_per_strip):
        samples = rows[y : y + rows_per_strip].astype(dtype)
        diff = samples.copy()
        diff[:, 1:] = samples[:, 1:] - samples[:, :-1]  # modular (unsigned) differences, as predictor 2 defines
        strip = zlib.compress(diff.tobytes(), 6)
        sizes.append(len(strip))
        handle.write(strip)
    end = handle.tell()
    offsets = np.cumsum([len(header)] + sizes[:-1]).tolist()
    handle.seek(origin)
    handle.write(_tiff_header(w, h, c, depth, rows_per_strip, offsets, sizes, icc_profile, extra))
    handle.seek(end)


def _tiff_header(w: int, h: int, c: int, depth: int, rows_per_strip: int, offsets: list[int], sizes: list[int],
                 icc_profile: bytes | None, extra: list | None = None) -> bytes:
    """Header, IFD and out-of-line values; the strips follow at ``offsets`` (its length does not depend on them)."""
    tags: list[tuple[int, int, list[int] | bytes]] = [
        (256, _LONG, [w]),
        (257, _LONG, [h]),
        (258, _SHORT, [depth] * c),
        (259, _SHORT, [8]),  # Adobe Deflate
        (262, _SHORT, [2 if c >= 3 else 1]),  # RGB or BlackIsZero
        (273, _LONG, offsets),
        (277, _SHORT, [c]),
        (278, _LONG, [rows_per_strip]),
        (279, _LONG, sizes),
        (284, _SHORT, [1]),  # chunky (interleaved) samples
        (317, _SHORT, [2]),
    ]
    if c in (2, 4):
        tags.append((338, _SHORT, [2]))
    tags.append((339, _SHORT, [1] * c))  # unsigned integer samples
    if icc_profile:
        tags.append((34675, _UNDEFINED, icc_profile))
    tags = sorted(tags + list(extra or []), key=lambda entry: entry[0])  # TIFF wants the entries in tag order

    layout = [(tag, kind, _count(kind, v), _payload(kind, v)) for tag, kind, v in tags]
    values_at = 8 + 2 + 12 * len(layout) + 4  # header, then the IFD, then out-of-line values, then strips
    entries, blobs, cursor = [], [], values_at
    for tag, kind, n, payload in layout:
        if len(payload) > 4:
            entries.append(struct.pack("<HHII", tag, kind, n, cursor))
            blobs.append(payload + b"\x00" * (len(payload) % 2))  # values stay word-aligned
            cursor += len(blobs[-1])
        else:
            entries.append(struct.pack("<HHI", tag, kind, n) + payload.ljust(4, b"\x00"))
    header = b"II*\x00" + struct.pack("<I", 8)
    ifd = struct.pack("<H", len(entries)) + b"".join(entries) + struct.pack("<I", 0)
    return header + ifd + b"".join(blobs)


def _count(kind: int, value) -> int:
    return len(value) // 2 if kind == _RATIONAL else len(value)


def _payload(kind: int, value) -> bytes:
    if kind in (_UNDEFINED, _ASCII):
        return bytes(value)
    return struct.pack(f"<{len(value)}{_TYPE_FORMAT[kind]}", *value)


def encode_tiff(array: np.ndarray, icc_profile: bytes | None = None) -> bytes:
    """Encode an (H, W, C) uint8/uint16 array, C in 1..4, as TIFF bytes (see :func:`write_tiff`)."""
    buffer = io.BytesIO()
    write_tiff(buffer, array, icc_profile)
    return buffer.getvalue()


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


# ------------------------------------------------------------------------------------------- truncated PNG data

_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel
_ZLIB_MAX_RATIO = 1032  # deflate expands at most ~1032:1 (258-byte matches in 2 bits), plus a little framing
_INFLATE_PIECE = 16 << 20  # inflate at most this many bytes at a time while counting


def png_data_problem(data: bytes) -> str | None:
    """Why a PNG's image data cannot fill the rows its header announces, or None when it can (or when the file is
    not a PNG this check understands: the decoder then reports what is wrong).

    Pillow accepts a zlib stream that ends cleanly before the last row and returns the missing rows black, so the
    decompressed size is counted here against the header: at once from the compressed size (a few bytes cannot
    hold millions of rows: deflate expands at most ~1032:1), else by inflating, a piece at a time.
    """
    header, pieces = _png_chunks(data)
    if header is None:
        return None
    width, height, depth, colour, interlace = header
    expected = _png_raw_size(width, height, depth * _PNG_CHANNELS.get(colour, 4), interlace)
    compressed = sum(len(p) for p in pieces)
    if compressed * _ZLIB_MAX_RATIO + 1024 < expected:
        return (f"its {compressed} bytes of image data cannot hold the {width}x{height} pixels its header "
                f"announces ({expected} bytes)")
    produced = _inflated_size(pieces, expected)
    if produced is None or produced >= expected:
        return None
    rows = "" if interlace else f": {produced // (expected // height)} of {height} rows"
    return f"its image data ends after {produced} of {expected} bytes{rows}"


def _png_chunks(data: bytes) -> tuple[tuple[int, int, int, int, int] | None, list[memoryview]]:
    """(width, height, bit depth, colour type, interlace) from IHDR, and the IDAT payloads."""
    if not data.startswith(_PNG_SIGNATURE):
        return None, []
    view, at, header, pieces = memoryview(data), 8, None, []
    while at + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, at)
        payload = view[at + 8 : at + 8 + length]
        if kind == b"IHDR" and length >= 13:
            header = struct.unpack_from(">IIBB2xB", data, at + 8)
        elif kind == b"IDAT":
            pieces.append(payload)
        elif kind == b"IEND":
            break
        at += 12 + length
    return header, pieces


def _png_raw_size(width: int, height: int, bits_per_pixel: int, interlace: int) -> int:
    """Bytes of filtered scanlines (a filter byte per row) the header implies; Adam7 has seven sub-images."""
    def size(w: int, h: int) -> int:
        return 0 if w == 0 or h == 0 else h * (1 + (w * bits_per_pixel + 7) // 8)

    if not interlace:
        return size(width, height)
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    return sum(size(-(-(width - x) // dx), -(-(height - y) // dy)) for x, y, dx, dy in passes)


def _inflated_size(pieces: list[memoryview], enough: int) -> int | None:
    """Bytes the IDAT stream inflates to (counting stops at ``enough``); None for a corrupt stream."""
    inflater, produced = zlib.decompressobj(), 0
    try:
        for piece in pieces:
            data = bytes(piece)
            while data and produced < enough:
                produced += len(inflater.decompress(data, _INFLATE_PIECE))
                data = inflater.unconsumed_tail
                if inflater.eof:
                    return produced
            if produced >= enough:
                return produced
    except zlib.error:
        return None
    return produced
