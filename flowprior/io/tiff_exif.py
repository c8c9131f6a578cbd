"""EXIF for TIFF outputs (private to :mod:`flowprior.io`).

A TIFF file *is* an IFD, so EXIF cannot be embedded as one opaque blob the way JPEG, PNG and WebP take it: its
IFD0 tags become the file's own tags, and the Exif, GPS and interoperability sub-IFDs would have to be written as
IFDs of their own. Pillow's libtiff encoder fails on those pointers ("Error setting from dictionary"), and this
package's 16-bit TIFF encoder writes plain tags only. So TIFF outputs carry IFD0's descriptive tags (text, dates,
camera names) and leave the sub-IFDs out, with a warning that names what was left out; the resolution comes from
the image's dpi instead.
"""

from __future__ import annotations

from PIL import Image as PILImage
from PIL import TiffTags

#: IFD0 pointers to sub-IFDs (Exif, GPS, interoperability, SubIFDs): not plain tags
SUB_IFD_POINTERS = {0x8769: "Exif", 0x8825: "GPS", 0xA005: "Interop", 0x014A: "SubIFDs"}
#: IFD0 tags that describe the pixel layout or resolution of the file they are in; the writer sets its own
LAYOUT_TAGS = frozenset(
    {254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 274, 277, 278, 279, 280, 281, 282, 283, 284, 296, 317, 318,
     319, 320, 322, 323, 324, 325, 338, 339, 340, 341, 513, 514, 530, 531, 532, 34377, 34675}
)  # fmt: skip
#: the ASCII tags the 16-bit TIFF encoder writes: ImageDescription, Make, Model, Software, DateTime, Artist,
#: HostComputer, Copyright. Not EXIF's ProcessingSoftware (0x000B): libtiff does not know it and warns on every
#: read of a file that has it.
TEXT_TAGS = (270, 271, 272, 305, 306, 315, 316, 33432)


def _load(exif: bytes) -> PILImage.Exif | None:
    ifd = PILImage.Exif()
    try:
        ifd.load(exif)
    except Exception:  # noqa: BLE001 - metadata is best effort: an unreadable blob is left out
        return None
    return ifd


def _name(tag: int) -> str:
    return TiffTags.lookup(tag).name or f"tag {tag}"


def _sub_ifds(ifd: PILImage.Exif) -> list[str]:
    found = []
    for pointer, name in SUB_IFD_POINTERS.items():
        if pointer in ifd:
            try:
                count = len(ifd.get_ifd(pointer))
            except Exception:  # noqa: BLE001 - a broken pointer still counts as left out
                count = 0
            found.append(f"{name} IFD ({count} tags)")
    return found


def pillow_tiff_exif(exif: bytes) -> tuple[bytes | None, str]:
    """EXIF that Pillow's TIFF encoder can write (IFD0's own tags, no sub-IFD pointers or layout tags), and what was
    left out ("" when nothing)."""
    ifd = _load(exif)
    if ifd is None:
        return None, "the EXIF block (unreadable)"
    dropped = _sub_ifds(ifd)
    kept = PILImage.Exif()
    for tag, value in ifd.items():
        if tag not in SUB_IFD_POINTERS and tag not in LAYOUT_TAGS:
            kept[tag] = value
    return (kept.tobytes() if len(kept) else None), ", ".join(dropped)


def tiff_text_tags(exif: bytes | None) -> tuple[list[tuple[int, bytes]], str]:
    """The ASCII tags of :data:`TEXT_TAGS` in ``exif``'s IFD0 as (tag, NUL-terminated bytes), in tag order, and
    what the 16-bit TIFF encoder leaves out ("" when nothing)."""
    if not exif:
        return [], ""
    ifd = _load(exif)
    if ifd is None:
        return [], "the EXIF block (unreadable)"
    text, other = [], []
    for tag in sorted(ifd):
        value = ifd[tag]
        if tag in TEXT_TAGS and isinstance(value, str):
            text.append((tag, value.encode("ascii", "replace") + b"\0"))
        elif tag not in SUB_IFD_POINTERS and tag not in LAYOUT_TAGS:
            other.append(_name(tag))
    return text, ", ".join(_sub_ifds(ifd) + other)
