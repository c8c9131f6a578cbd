"""Editing EXIF bytes in place: setting an IFD0 text tag without moving any other byte."""

from __future__ import annotations

import struct

from flowprior.io.codecs import EXIF_HEADER

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
