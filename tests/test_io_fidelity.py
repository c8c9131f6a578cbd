"""Issue 17, files: truncated data is refused unless accepted knowingly; DPI and camera/scanner metadata survive
(PNG pHYs, JFIF/EXIF, TIFF tags), including EXIF with sub-IFDs, GPS and a maker note written to TIFF."""

from __future__ import annotations

import io as pyio
import struct
import time
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image as PILImage

from flowprior import io
from flowprior.cli import main
from flowprior.prior.checkpoint import save_checkpoint
from tests.conftest import natural_crop
from tests.test_solver import tiny_prior

RNG = np.random.default_rng(17)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, depth: int, colour: int, scanlines: bytes) -> bytes:
    """A PNG whose IDAT holds exactly ``scanlines`` (filtered rows), whatever its header says."""
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(scanlines))
            + _chunk(b"IEND", b""))


def _short_png(path, depth: int = 8, rows: int = 32):
    """A 64x64 RGB PNG whose data stream ends cleanly after ``rows`` rows."""
    samples = RNG.integers(0, 2**depth, size=(64, 64, 3)).astype(">u2" if depth == 16 else np.uint8)
    data = b"".join(b"\0" + samples[y].tobytes() for y in range(rows))
    path.write_bytes(_png(64, 64, depth, 2, data))
    return path


# ------------------------------------------------------------------------------------------ 4. truncated files


@pytest.mark.parametrize("depth", [8, 16])
def test_a_png_with_fewer_rows_than_its_header_is_refused(tmp_path, depth):
    path = _short_png(tmp_path / "short.png", depth)
    with pytest.raises(io.ImageReadError, match=r"truncated: .* 32 of 64 rows.*--accept-truncated"):
        io.read_image(path)


def test_a_complete_png_passes_the_check(tmp_path):
    path = _short_png(tmp_path / "full.png", rows=64)
    assert io.read_image(path).size == (64, 64) and not io.read_image(path).truncated


def test_accept_truncated_reads_the_rows_there_are_and_says_so(tmp_path):
    image = io.read_image(_short_png(tmp_path / "short.png"), accept_truncated=True)
    assert image.truncated and image.size == (64, 64)
    assert float(image.pixels[..., 32:, :].max()) == 0.0 and float(image.pixels[..., :32, :].max()) > 0


def test_a_truncated_jpeg_is_refused_unless_accepted(tmp_path):
    buffer = pyio.BytesIO()
    PILImage.fromarray(RNG.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)).save(buffer, format="JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) * 2 // 3])
    with pytest.raises(io.ImageReadError, match="truncated"):
        io.read_image(path)
    image = io.read_image(path, accept_truncated=True)
    assert image.truncated and image.size == (64, 64)


def test_a_68_byte_png_announcing_a_huge_image_is_refused_at_once(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png(3, 70000, 8, 2, b"\0" * 10))
    assert len(path.read_bytes()) < 80
    started = time.perf_counter()
    with pytest.raises(io.ImageReadError, match="cannot hold the 3x70000 pixels"):
        io.read_image(path)
    assert time.perf_counter() - started < 1.0


def test_restore_refuses_a_truncated_file_and_accept_truncated_takes_it(tmp_path, capsys):
    prior = tiny_prior(patch=32, levels=2)
    save_checkpoint(tmp_path / "tiny.pt", prior.config_dict(), prior.state_dict())
    source = _short_png(tmp_path / "short.png")
    argv = ["restore", str(source), "-o", str(tmp_path / "out.png"), "--model", str(tmp_path / "tiny.pt"),
            "-d", "noise", "--steps", "4", "--quiet"]
    assert main(argv) == 2 and "truncated" in capsys.readouterr().err and not (tmp_path / "out.png").exists()
    assert main([*argv, "--accept-truncated"]) == 0
    assert "is truncated: its missing rows" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------- 6. metadata


def _camera_exif() -> bytes:
    exif = PILImage.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "EOS 5D"
    exif[0x013B], exif[0x8298], exif[0x010E] = "A. Archivist", "(c) The Archive", "Plate 12, box 3"
    sub = exif.get_ifd(0x8769)
    sub[0x9003], sub[0x829A] = "2020:01:01 10:00:00", 0.004
    sub[0x927C] = b"MAKERNOTE\x00\x01\x02offset-sensitive"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (52.0, 30.0, 0.0)
    return exif.tobytes()


@pytest.mark.parametrize("suffix,bit_depth", [(".png", 8), (".png", 16), (".jpg", 8), (".tif", 8), (".tif", 16)])
def test_dpi_is_kept(tmp_path, suffix, bit_depth):
    path = io.write_image(tmp_path / f"scan{suffix}", natural_crop(24, 32), bit_depth=bit_depth, dpi=(600, 300))
    assert tuple(round(d) for d in io.read_image(path).dpi) == (600, 300)
    assert tuple(round(float(d)) for d in PILImage.open(path).info["dpi"]) == (600, 300)  # another reader agrees


def test_png_dpi_round_trips_byte_for_byte(tmp_path):
    first = io.write_image(tmp_path / "a.png", natural_crop(24, 32), dpi=(1200, 1200))
    again = io.write_image(tmp_path / "b.png", io.read_image(first).pixels, dpi=io.read_image(first).dpi)
    assert first.read_bytes() == again.read_bytes()


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_camera_exif_with_sub_ifds_gps_and_maker_note_writes_to_tiff(tmp_path, bit_depth):
    camera = PILImage.fromarray((natural_crop(32, 40)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8))
    camera.save(tmp_path / "camera.jpg", exif=_camera_exif(), dpi=(300, 300))
    image = io.read_image(tmp_path / "camera.jpg")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        io.write_image(tmp_path / "out.tif", image.pixels, bit_depth=bit_depth, exif=image.exif, dpi=image.dpi)
    written = PILImage.open(tmp_path / "out.tif")
    tags = written.getexif()
    assert (tags[0x013B], tags[0x8298], tags[0x010E]) == ("A. Archivist", "(c) The Archive", "Plate 12, box 3")
    assert tags[0x010F] == "Canon" and round(float(written.info["dpi"][0])) == 300
    assert io.read_image(tmp_path / "out.tif").bit_depth == bit_depth
    assert any("Exif IFD" in str(w.message) and "GPS IFD" in str(w.message) for w in caught)


def test_a_camera_jpeg_restores_to_tiff_without_error(tmp_path, capsys):
    prior = tiny_prior(patch=32, levels=2)
    save_checkpoint(tmp_path / "tiny.pt", prior.config_dict(), prior.state_dict())
    camera = PILImage.fromarray((natural_crop(40, 48)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8))
    camera.save(tmp_path / "camera.jpg", exif=_camera_exif(), dpi=(300, 300), quality=95)
    code = main(["restore", str(tmp_path / "camera.jpg"), "-o", str(tmp_path / "out.tif"), "--model",
                 str(tmp_path / "tiny.pt"), "-d", "noise", "--steps", "4", "--quiet"])
    assert code == 0, capsys.readouterr().err
    written = PILImage.open(tmp_path / "out.tif")
    assert written.getexif()[0x013B] == "A. Archivist" and round(float(written.info["dpi"][0])) == 300
