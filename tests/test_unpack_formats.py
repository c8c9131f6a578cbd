"""Tests for scripts/unpack_formats.py: Qt .rcc reader, embedded-JPEG scanner, licence parsers."""

from __future__ import annotations

import importlib.util
import io
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

_PATH = Path(__file__).resolve().parents[1] / "scripts" / "unpack_formats.py"
_spec = importlib.util.spec_from_file_location("unpack_formats", _PATH)
uf = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("unpack_formats", uf)  # dataclasses look their module up there
_spec.loader.exec_module(uf)


# ---------------------------------------------------------------- .rcc


def _build_rcc(version: int) -> bytes:
    """A bundle: / -> [a/ -> [x.bin (zlib), y.bin (plain)], top.txt (plain)], per the Qt format."""
    names, name_off = b"", {}
    for n in ("a", "top.txt", "x.bin", "y.bin"):
        name_off[n] = len(names)
        enc = n.encode("utf-16-be")
        names += struct.pack(">HI", len(n), 0xDEADBEEF) + enc  # hash value is not checked
    payload = {"top.txt": b"hello", "x.bin": bytes(range(256)) * 20, "y.bin": b"\x00\xffplain"}
    data, data_off = b"", {}
    for n, raw in payload.items():
        data_off[n] = len(data)
        blob = struct.pack(">I", len(raw)) + zlib.compress(raw) if n == "x.bin" else raw
        data += struct.pack(">I", len(blob)) + blob
    tail = b"\x00" * 8 if version >= 2 else b""  # modification time

    def dir_node(name_o, count, first):
        return struct.pack(">IHII", name_o, 2, count, first) + tail

    def file_node(name, flags):
        return struct.pack(">IHHHI", name_off[name], flags, 0, 1, data_off[name]) + tail

    # Children of a directory are contiguous: root's are nodes 1-2, a/'s are nodes 3-4.
    tree = (dir_node(0, 2, 1) + dir_node(name_off["a"], 2, 3) + file_node("top.txt", 0)
            + file_node("x.bin", 1) + file_node("y.bin", 0))
    header_len = 24 if version >= 3 else 20
    d_off = header_len
    n_off = d_off + len(data)
    t_off = n_off + len(names)
    header = b"qres" + struct.pack(">IIII", version, t_off, d_off, n_off)
    if version >= 3:
        header += struct.pack(">I", 0)
    return header + data + names + tree


@pytest.mark.parametrize("version", [1, 2, 3])
def test_rcc_reader_tree_names_and_compression(version):
    entries = {e.path: e for e in uf.iter_rcc(_build_rcc(version))}
    assert list(entries) == ["a/x.bin", "a/y.bin", "top.txt"]
    assert entries["a/x.bin"].data == bytes(range(256)) * 20 and entries["a/x.bin"].compressed
    assert entries["a/y.bin"].data == b"\x00\xffplain" and not entries["a/y.bin"].compressed
    assert entries["top.txt"].data == b"hello"


def test_rcc_reader_errors():
    with pytest.raises(ValueError, match="qres"):
        list(uf.iter_rcc(b"nope" + bytes(40)))
    with pytest.raises(ValueError, match="version 9"):
        list(uf.iter_rcc(b"qres" + struct.pack(">IIII", 9, 0, 0, 0)))
    good = bytearray(_build_rcc(3))
    size_at = 24 + struct.calcsize(">I") + 5  # second blob (x.bin): its u32 length field
    struct.pack_into(">I", good, size_at + 4, 999999)  # wrong uncompressed size in the qCompress header
    with pytest.raises(ValueError, match="inflated"):
        list(uf.iter_rcc(bytes(good)))


# ---------------------------------------------------------------- embedded JPEGs


def _jpeg(w: int, h: int, seed: int) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=80)
    return buf.getvalue()


def test_jpeg_scanner_finds_streams_and_picks_largest():
    small, large = _jpeg(16, 8, 0), _jpeg(40, 24, 1)
    blob = b"EET\x00" * 10 + small + b"junk\xff\xd8\xff\x00garbage" + large + b"\x00trailer" * 5
    streams = uf.jpeg_streams(blob)
    assert [(w, h) for _, w, h, _ in streams] == [(16, 8), (40, 24)]
    assert streams[0][3] == small and streams[1][3] == large
    assert streams[1][0] == blob.index(large)
    w, h, data = uf.largest_jpeg(blob)
    assert (w, h) == (40, 24) and data == large


def test_jpeg_scanner_nested_thumbnail_and_truncation():
    thumb, main = _jpeg(8, 8, 2), _jpeg(32, 32, 3)
    app1 = b"Exif\x00\x00" + thumb  # a thumbnail inside an APP1 segment of the outer stream
    outer = main[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + main[2:]
    truncated = _jpeg(64, 64, 4)[:-300]
    streams = uf.jpeg_streams(outer + truncated)
    assert [(w, h) for _, w, h, _ in streams] == [(32, 32), (8, 8)]  # the truncated one is dropped
    assert streams[0][3] == outer
    assert uf.largest_jpeg(outer + truncated)[2] == outer
    assert uf.largest_jpeg(b"no jpeg \xff\xd8\xff here") is None


# ---------------------------------------------------------------- licences


def test_dep5_last_matching_paragraph_wins():
    text = ("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
            "Files: *\nCopyright: x\nLicense: GPL-3+\n\n"
            "Files: images/land/*\nCopyright: y\nLicense: public-domain\n Some text.\n\n"
            "Files:\n images/land/city4*\n images/land/beach0*\nCopyright: z\nLicense: CC-BY-SA-4.0\n")
    base = "usr/share/games/es/images/land/"
    assert uf.dep5_licence(text, base + "city4@2x.jpg") == "CC-BY-SA-4.0"
    assert uf.dep5_licence(text, base + "sea1@2x.jpg") == "public-domain"
    assert uf.dep5_licence(text, "usr/bin/es") == "GPL-3+"
    assert uf.dep5_licence("Files: docs/*\nLicense: MIT\n", "usr/bin/x") is None


def test_gcompris_readme_parser():
    readme = ("Copyright: A\nLicense: CC-BY-SA 4.0\nFiles:\nk.svg\neg/e.svg\n\n"
              "Copyright: B\nSource: https://example.org/x.jpg\nLicense: CC0-1.0\nFiles: x.webp\n")
    out = uf.gcompris_readme_licences(readme)
    assert out["eg/e.svg"]["licence"] == "CC-BY-SA 4.0"
    assert out["x.webp"] == {"copyright": "B", "source": "https://example.org/x.jpg", "licence": "CC0-1.0"}
