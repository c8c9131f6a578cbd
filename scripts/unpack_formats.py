"""Readers for the two archive formats that hide training photos inside Debian packages.

Both readers are our own, written from the format descriptions in ``shared/DATA.md``:

* Qt binary resource bundles (``.rcc``, used by gcompris-qt-data): a ``qres`` header, a
  fixed-size node tree, UTF-16BE names and length-prefixed data blobs (optionally zlib).
* Enlightenment ``.edj`` backgrounds: the JPEG streams embedded at several sizes are found
  by scanning for the JPEG start-of-image marker; the largest stream that decodes wins.

This module needs only the standard library and Pillow; it knows nothing about apt.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

RCC_MAGIC = b"qres"
_FLAG_COMPRESSED = 0x01
_FLAG_DIRECTORY = 0x02
_FLAG_COMPRESSED_ZSTD = 0x04
JPEG_SOI = b"\xff\xd8\xff"


@dataclass(frozen=True)
class RccEntry:
    """One file stored in a Qt resource bundle.

    Attributes:
        path: Slash-separated path inside the bundle (no leading slash).
        data: Decompressed file content.
        compressed: Whether the blob was stored zlib-compressed.
    """

    path: str
    data: bytes
    compressed: bool


def _u16(buf: bytes, off: int) -> int:
    return struct.unpack_from(">H", buf, off)[0]


def _u32(buf: bytes, off: int) -> int:
    return struct.unpack_from(">I", buf, off)[0]


def _rcc_name(buf: bytes, names_off: int, name_off: int) -> str:
    # Name record: u16 length in UTF-16 code units, u32 hash, then the UTF-16BE characters.
    start = names_off + name_off
    n = _u16(buf, start)
    return buf[start + 6 : start + 6 + 2 * n].decode("utf-16-be")


def _rcc_blob(buf: bytes, data_off: int, blob_off: int, flags: int, path: str) -> bytes:
    start = data_off + blob_off
    size = _u32(buf, start)
    raw = buf[start + 4 : start + 4 + size]
    if len(raw) != size:
        raise ValueError(f"rcc: truncated data for {path!r}")
    if flags & _FLAG_COMPRESSED_ZSTD:
        raise ValueError(f"rcc: {path!r} is zstd-compressed, which this reader does not support")
    if flags & _FLAG_COMPRESSED:
        # qCompress layout: u32 big-endian uncompressed size, then a zlib stream.
        expected = _u32(raw, 0)
        out = zlib.decompress(raw[4:])
        if len(out) != expected:
            raise ValueError(f"rcc: {path!r} inflated to {len(out)} bytes, header says {expected}")
        return out
    return raw


def iter_rcc(buf: bytes) -> Iterator[RccEntry]:
    """Yield every file of a Qt binary resource bundle (format versions 1-3).

    Args:
        buf: The whole ``.rcc`` file.

    Yields:
        One :class:`RccEntry` per file node, depth first in tree order.

    Raises:
        ValueError: On a bad magic, unknown version, truncated data or zstd payloads.
    """
    if buf[:4] != RCC_MAGIC:
        raise ValueError("rcc: missing 'qres' magic")
    version, tree_off, data_off, names_off = struct.unpack_from(">IIII", buf, 4)
    if version not in (1, 2, 3):
        raise ValueError(f"rcc: unsupported format version {version}")
    # Version >= 2 appends a u64 modification time to every node.
    node_size = 14 if version == 1 else 22

    def walk(index: int, prefix: str, depth: int) -> Iterator[RccEntry]:
        if depth > 64:
            raise ValueError("rcc: directory tree too deep (cycle?)")
        off = tree_off + index * node_size
        if off + node_size > len(buf):
            raise ValueError("rcc: node outside file")
        name_off = _u32(buf, off)
        flags = _u16(buf, off + 4)
        name = _rcc_name(buf, names_off, name_off) if (index or depth) else ""
        path = f"{prefix}/{name}" if prefix else name
        if flags & _FLAG_DIRECTORY:
            count, first = struct.unpack_from(">II", buf, off + 6)
            for child in range(first, first + count):
                yield from walk(child, path, depth + 1)
        else:
            # File node: u16 territory, u16 language, u32 offset into the data section.
            blob_off = _u32(buf, off + 10)
            yield RccEntry(path, _rcc_blob(buf, data_off, blob_off, flags, path),
                           bool(flags & _FLAG_COMPRESSED))

    yield from walk(0, "", 0)


def _jpeg_extent(buf: bytes, start: int) -> tuple[int, int, int] | None:
    """Walk the marker segments of a JPEG starting at ``start``.

    Returns ``(end, width, height)`` with ``end`` just past the EOI marker, or ``None`` when the
    bytes do not form a structurally complete stream. Segments with a length (APPn, DQT, ...)
    are skipped whole, so an EXIF thumbnail nested in APP1 does not end the outer stream.
    """
    n = len(buf)
    pos = start + 2
    width = height = 0
    while pos + 4 <= n:
        if buf[pos] != 0xFF:
            return None
        marker = buf[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:
            return (pos + 2, width, height) if width and height else None
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # parameterless markers
            pos += 2
            continue
        seg_len = _u16(buf, pos + 2)
        if seg_len < 2:
            return None
        # SOF0..SOF15 except DHT (C4), JPG (C8), DAC (CC) carry the frame size.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and pos + 9 <= n:
            height, width = struct.unpack_from(">HH", buf, pos + 5)
        pos += 2 + seg_len
        if marker == 0xDA:
            # Entropy-coded data: runs until an FF not followed by 00 (stuffing) or RSTn.
            while True:
                pos = buf.find(b"\xff", pos)
                if pos < 0 or pos + 1 >= n:
                    return None
                nxt = buf[pos + 1]
                if nxt == 0x00 or 0xD0 <= nxt <= 0xD7 or nxt == 0xFF:
                    pos += 1 if nxt == 0xFF else 2
                    continue
                break
    return None


def jpeg_streams(buf: bytes) -> list[tuple[int, int, int, bytes]]:
    """Find every structurally complete JPEG embedded in a byte string.

    A candidate starts at each ``FF D8 FF`` marker; its end is found by walking the marker
    segments to EOI (no decoding). Streams nested in another stream's segment (EXIF
    thumbnails) are reported too, as separate entries.

    Args:
        buf: Arbitrary bytes, e.g. a whole ``.edj`` file.

    Returns:
        ``(offset, width, height, jpeg_bytes)`` per stream, in file order. Sizes come from
        the frame header; call :func:`largest_jpeg` for a stream verified by Pillow.
    """
    found = []
    pos = buf.find(JPEG_SOI)
    while pos >= 0:
        ext = _jpeg_extent(buf, pos)
        if ext is not None:
            end, w, h = ext
            found.append((pos, w, h, buf[pos:end]))
        pos = buf.find(JPEG_SOI, pos + 1)
    return found


def _decodes(data: bytes) -> bool:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format != "JPEG":
                return False
            im.load()
        return True
    except Exception:  # noqa: BLE001 - any decoder error means "not usable"
        return False


def largest_jpeg(buf: bytes) -> tuple[int, int, bytes] | None:
    """Return ``(width, height, jpeg_bytes)`` of the largest embedded JPEG that Pillow decodes.

    Candidates are tried from the largest frame down, so usually only one full decode runs.

    Args:
        buf: Arbitrary bytes, e.g. a whole ``.edj`` file.

    Returns:
        The largest fully decodable stream by pixel count, or ``None`` if there is none.
    """
    for _, w, h, data in sorted(jpeg_streams(buf), key=lambda s: -s[1] * s[2]):
        if _decodes(data):
            return w, h, data
    return None


def dep5_licence(copyright_text: str, path: str) -> str | None:
    """Licence of ``path`` under a machine-readable Debian ``copyright`` file (DEP-5).

    Paragraphs are matched in order and the last matching ``Files:`` glob wins, as DEP-5 says.
    Globs name paths in the *source* tree while ``path`` is where the file is installed, so a
    glob may match any trailing part of ``path``.

    Args:
        copyright_text: Content of ``usr/share/doc/<pkg>/copyright``.
        path: Path of the file inside the binary package.

    Returns:
        The short licence name of the winning paragraph, or ``None`` if nothing matched.
    """
    import fnmatch

    parts = path.strip("/").split("/")
    tails = ["/".join(parts[i:]) for i in range(len(parts))]
    result = None
    for para in copyright_text.split("\n\n"):
        globs: list[str] = []
        licence = None
        field = None
        for line in para.splitlines():
            if line[:1] in (" ", "\t"):
                if field == "files":
                    globs += line.split()
                continue
            key, _, value = line.partition(":")
            field = key.strip().lower()
            if field == "files":
                globs += value.split()
            elif field == "license" and licence is None:
                licence = value.strip()
        if globs and licence and any(fnmatch.fnmatchcase(t, g) for g in globs for t in tails):
            result = licence
    return result


def gcompris_readme_licences(readme: str) -> dict[str, dict[str, str]]:
    """Parse a gcompris ``resource/README``: file name -> {licence, copyright, source}.

    The README is a list of blank-line separated blocks with ``Copyright:``, ``License:``,
    ``Source:`` and ``Files:`` fields; file names follow ``Files:`` on the same or next lines.
    """
    out: dict[str, dict[str, str]] = {}
    for block in readme.split("\n\n"):
        info: dict[str, str] = {}
        files: list[str] = []
        in_files = False
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            k = key.strip().lower()
            if sep and k in ("copyright", "license", "source", "comments"):
                info[{"license": "licence"}.get(k, k)] = value.strip()
                in_files = False
            elif sep and k == "files":
                files += value.split()
                in_files = True
            elif in_files and line.strip():
                files += line.split()
        for name in files:
            out[name] = info
    return out
