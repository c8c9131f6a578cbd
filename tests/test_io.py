"""flowprior.io: bit-exact round trips, metadata (ICC, EXIF orientation), alpha, palette, CMYK, bad files."""

from __future__ import annotations

import io as pyio
import os

import cv2
import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from PIL import ImageCms, ImageOps

from flowprior import io
from flowprior.io.codecs import apply_orientation

RNG = np.random.default_rng(1234)


def _random_uint(h: int, w: int, c: int, bit_depth: int) -> np.ndarray:
    array = RNG.integers(0, 2**bit_depth, size=(h, w, c), dtype=np.uint8 if bit_depth == 8 else np.uint16)
    array[: h // 3] //= 9  # a smoother band, so several PNG filters win some rows
    return array


def _write_array(path, array: np.ndarray, colour: int, **kwargs):
    planes = io.from_uint(array).permute(2, 0, 1).unsqueeze(0)
    alpha = planes[:, colour:] if array.shape[2] > colour else None
    bit_depth = 16 if array.dtype == np.uint16 else 8
    return io.write_image(path, planes[:, :colour], bit_depth=bit_depth, alpha=alpha, **kwargs)


def _read_array(path) -> tuple[np.ndarray, io.Image]:
    img = io.read_image(path)
    planes = img.pixels if img.alpha is None else torch.cat([img.pixels, img.alpha], 1)
    return io.to_uint(planes[0].permute(1, 2, 0), img.bit_depth), img


def _srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _exif(orientation: int) -> bytes:
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "FlowCam"  # Make
    exif.get_ifd(0x8769)[0x829A] = (1, 250)  # ExposureTime in the EXIF sub-IFD
    return exif.tobytes()


# ------------------------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("bit_depth", [8, 16])
@pytest.mark.parametrize("colour,alpha", [(1, False), (3, False), (1, True), (3, True)])
def test_round_trip_is_bit_exact(tmp_path, suffix, bit_depth, colour, alpha):
    array = _random_uint(29, 37, colour + alpha, bit_depth)
    path = _write_array(tmp_path / f"x{suffix}", array, colour)
    back, img = _read_array(path)
    expected_colour = 3 if (suffix, bit_depth, colour, alpha) == (".tif", 16, 1, True) else colour
    if expected_colour != colour:  # documented: 16-bit gray+alpha TIFF is stored as RGBA
        array = array[..., [0, 0, 0, 1]]
    assert img.bit_depth == bit_depth and img.pixels.shape == (1, expected_colour, 29, 37)
    assert (img.alpha is not None) == alpha
    np.testing.assert_array_equal(back, array)
    assert img.pixels.dtype == torch.float32 and float(img.pixels.min()) >= 0 and float(img.pixels.max()) <= 1


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_16bit_files_match_an_independent_decoder(tmp_path, suffix, channels):
    # Guards against our reader and writer sharing a mistake (e.g. both swapping R and B): OpenCV decodes here.
    array = _random_uint(
        900 if suffix == ".tif" else 40, 100, channels, 16
    )  # the tall TIFF has several strips
    path = _write_array(tmp_path / f"x{suffix}", array, 1 if channels == 1 else 3)
    decoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    decoded = decoded[..., None] if decoded.ndim == 2 else decoded[..., [2, 1, 0, 3][:channels]]
    assert decoded.dtype == np.uint16
    np.testing.assert_array_equal(decoded, array)


def test_8bit_png_matches_pillow(tmp_path):
    array = _random_uint(31, 17, 4, 8)
    path = _write_array(tmp_path / "x.png", array, 3)
    np.testing.assert_array_equal(np.asarray(PILImage.open(path)), array)


def test_quantization_convention_and_exact_inverse():
    for bits in (8, 16):
        q = np.arange(2**bits, dtype=np.uint8 if bits == 8 else np.uint16)
        np.testing.assert_array_equal(io.to_uint(io.from_uint(q), bits), q)
    x = torch.tensor([-0.2, 0.0, 0.2, 0.5, 1.0, 1.7])
    np.testing.assert_array_equal(io.to_uint(x, 8), [0, 0, 51, 128, 255, 255])  # 127.5 ties to even
    np.testing.assert_array_equal(io.to_uint(x, 16), [0, 0, 13107, 32768, 65535, 65535])  # 32767.5 -> even
    with pytest.raises(ValueError, match="NaN"):
        io.to_uint(torch.tensor([0.5, float("nan")]))
    with pytest.raises(ValueError, match="8 or 16"):
        io.to_uint(x, 12)


# ---------------------------------------------------------------------------------------------------- metadata


@pytest.mark.parametrize(
    "suffix,bit_depth", [(".png", 8), (".png", 16), (".tif", 8), (".tif", 16), (".jpg", 8), (".webp", 8)]
)
def test_icc_profile_bytes_are_preserved(tmp_path, suffix, bit_depth):
    icc = _srgb_icc()
    path = _write_array(tmp_path / f"x{suffix}", _random_uint(16, 16, 3, bit_depth), 3, icc_profile=icc)
    assert io.read_image(path).icc_profile == icc


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillow_exif_transpose(orientation):
    array = np.arange(3 * 5 * 2, dtype=np.uint8).reshape(3, 5, 2) * 4
    im = PILImage.fromarray(array, mode=None)
    exif = im.getexif()
    exif[0x0112] = orientation
    expected = np.asarray(ImageOps.exif_transpose(im))
    np.testing.assert_array_equal(apply_orientation(array, orientation), expected)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_exif_orientation_is_applied_and_reset(tmp_path, suffix):
    # 2x3 blocks of 8x8 pixels with distinct gray levels, so JPEG keeps the layout recognisable.
    blocks = np.array([[0, 50, 100], [150, 200, 250]], dtype=np.uint8)
    stored = np.kron(blocks, np.ones((8, 8), dtype=np.uint8))  # 16 x 24
    PILImage.fromarray(stored).save(tmp_path / f"x{suffix}", exif=_exif(6), quality=100)
    img = io.read_image(tmp_path / f"x{suffix}")
    upright = np.rot90(stored, k=-1)  # orientation 6: the stored image must be turned 90 degrees clockwise
    assert img.pixels.shape == (1, 1, 24, 16)
    np.testing.assert_allclose(img.pixels[0, 0].numpy() * 255, upright, atol=3)
    exif = PILImage.Exif()
    exif.load(img.exif)
    assert exif[0x0112] == 1 and exif[0x010F] == "FlowCam" and exif.get_ifd(0x8769)[0x829A] == (1, 250)

    # Writing the upright pixels with that EXIF and reading again must not rotate a second time.
    out = io.write_image(tmp_path / "again.png", img.pixels, exif=img.exif)
    again = io.read_image(out)
    torch.testing.assert_close(again.pixels, img.pixels, atol=0, rtol=0)
    assert PILImage.open(out).getexif()[0x010F] == "FlowCam"


def test_exif_orientation_on_the_16bit_colour_path(tmp_path):
    array = _random_uint(5, 7, 3, 16)
    path = _write_array(tmp_path / "x.png", array, 3, exif=_exif(8))
    back, img = _read_array(path)
    np.testing.assert_array_equal(back, np.rot90(array, k=1))  # orientation 8: 90 degrees counter-clockwise
    assert img.bit_depth == 16


def test_tiff_exif_keeps_descriptive_tags_only(tmp_path):
    PILImage.fromarray(_random_uint(6, 4, 3, 8)).save(tmp_path / "x.tif", exif=_exif(3))
    img = io.read_image(tmp_path / "x.tif")
    exif = PILImage.Exif()
    exif.load(img.exif)
    assert exif[0x010F] == "FlowCam" and exif.get(0x0112, 1) == 1
    assert not {256, 257, 273, 279} & set(exif)  # width, height, strip offsets/counts belong to the old file


def test_exif_in_16bit_colour_tiff_warns(tmp_path):
    with pytest.warns(UserWarning, match="EXIF"):
        _write_array(tmp_path / "x.tif", _random_uint(4, 4, 3, 16), 3, exif=_exif(1))


# ------------------------------------------------------------------------------------- alpha, palette, CMYK


@pytest.mark.parametrize("suffix", [".png", ".webp", ".tif"])
def test_alpha_is_carried_untouched(tmp_path, suffix):
    array = _random_uint(12, 10, 4, 8)
    array[..., 3] = np.arange(120, dtype=np.uint8).reshape(12, 10) * 2  # includes fully transparent pixels
    back, img = _read_array(_write_array(tmp_path / f"x{suffix}", array, 3))
    assert img.pixels.shape[1] == 3 and img.alpha.shape == (1, 1, 12, 10)
    np.testing.assert_array_equal(back, array)  # WebP is written lossless with exact RGB under alpha 0


def test_palette_with_transparency_reads_as_rgba(tmp_path):
    indices = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)
    im = PILImage.fromarray(indices, mode="P")
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    im.save(tmp_path / "p.png", transparency=1)
    back, img = _read_array(tmp_path / "p.png")
    assert img.mode == "P" and img.pixels.shape == (1, 3, 2, 3)
    np.testing.assert_array_equal(back[..., 3], np.where(indices == 1, 0, 255))
    np.testing.assert_array_equal(back[0, 0, :3], [255, 0, 0])
    np.testing.assert_array_equal(back[0, 2, :3], [0, 0, 255])


def test_palette_without_transparency_reads_as_rgb(tmp_path):
    im = PILImage.fromarray(np.zeros((2, 2), dtype=np.uint8), mode="P")
    im.putpalette([10, 20, 30] + [0] * 765)
    im.save(tmp_path / "p.bmp")
    img = io.read_image(tmp_path / "p.bmp")
    assert img.alpha is None and img.format == "BMP"
    np.testing.assert_array_equal(io.to_uint(img.pixels[0, :, 0, 0]), [10, 20, 30])


def test_rgb_colour_key_becomes_alpha(tmp_path):
    array = np.full((2, 2, 3), 7, dtype=np.uint8)
    array[0, 0] = (1, 2, 3)
    PILImage.fromarray(array).save(tmp_path / "k.png", transparency=(1, 2, 3))
    img = io.read_image(tmp_path / "k.png")
    np.testing.assert_array_equal(io.to_uint(img.alpha[0, 0]), [[0, 255], [255, 255]])


@pytest.mark.parametrize("with_icc", [False, True])
def test_cmyk_jpeg_reads_as_rgb(tmp_path, with_icc):
    cmyk = np.zeros((16, 32, 4), dtype=np.uint8)
    cmyk[:, :16, 0] = 255  # left half pure cyan, right half white
    # An RGB profile on a CMYK image cannot be applied: reading must fall back to the naive conversion.
    extra = {"icc_profile": _srgb_icc()} if with_icc else {}
    PILImage.fromarray(cmyk, mode="CMYK").save(tmp_path / "c.jpg", quality=100, **extra)
    img = io.read_image(tmp_path / "c.jpg")
    assert img.mode == "CMYK" and img.pixels.shape == (1, 3, 16, 32) and img.icc_profile is None
    rgb = io.to_uint(img.pixels[0]).astype(int)
    assert np.abs(rgb[:, 4:12, 4:12] - np.array([0, 255, 255]).reshape(3, 1, 1)).max() <= 3
    assert np.abs(rgb[:, 4:12, 20:28] - 255).max() <= 3


def test_grayscale_jpeg_stays_one_channel(tmp_path, make_natural_image):
    gray = make_natural_image(16, 16, channels=1)
    io.write_image(tmp_path / "g.jpg", gray)
    img = io.read_image(tmp_path / "g.jpg")
    assert img.pixels.shape == (1, 1, 16, 16) and img.mode == "L"
    assert (img.pixels - gray).abs().max() < 0.05


# ------------------------------------------------------------------------------------------------ bad files


def _truncated_jpeg(path):
    buffer = pyio.BytesIO()
    PILImage.fromarray(_random_uint(64, 64, 3, 8)).save(buffer, format="JPEG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


def _truncated_png16(path):
    data = _write_array(path, _random_uint(64, 64, 3, 16), 3).read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    "name,make,reason",
    [
        ("missing.png", lambda p: None, "no such file"),
        ("empty.png", lambda p: p.write_bytes(b""), "empty"),
        ("text.png", lambda p: p.write_text("not an image"), "not a PNG, JPEG"),
        ("cut.jpg", _truncated_jpeg, "truncated"),
        ("cut16.png", _truncated_png16, "truncated"),
        ("folder.png", lambda p: p.mkdir(), "directory"),
    ],
)
def test_unreadable_files_raise_image_read_error_naming_the_path(tmp_path, name, make, reason):
    path = tmp_path / name
    make(path)
    with pytest.raises(io.ImageReadError, match=reason) as info:
        io.read_image(path)
    assert str(path) in str(info.value) and isinstance(info.value, ValueError)


def test_write_rejects_what_the_format_cannot_store(tmp_path, natural_image):
    with pytest.raises(ValueError, match="8-bit"):
        io.write_image(tmp_path / "x.jpg", natural_image, bit_depth=16)
    with pytest.raises(ValueError, match="alpha"):
        io.write_image(tmp_path / "x.jpg", natural_image, alpha=natural_image[:, :1])
    with pytest.raises(ValueError, match="unsupported suffix '.gif'"):
        io.write_image(tmp_path / "x.gif", natural_image)
    with pytest.raises(ValueError, match="NaN"):
        io.write_image(tmp_path / "x.png", natural_image * float("nan"))
    with pytest.raises(ValueError, match=r"C = 1 or 3"):
        io.write_image(tmp_path / "x.png", natural_image[:, :2])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        io.write_image(tmp_path / "no" / "x.png", natural_image)
    assert os.listdir(tmp_path) == []


def test_writes_are_atomic(tmp_path, natural_image, monkeypatch):
    target = io.write_image(tmp_path / "x.png", natural_image)
    before = target.read_bytes()

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        io.write_image(target, 1 - natural_image)
    assert target.read_bytes() == before and os.listdir(tmp_path) == ["x.png"]  # no temporary file left over


# ------------------------------------------------------------------------------------------------- streaming


@pytest.mark.parametrize("suffix,bit_depth,colour,alpha", [(".png", 8, 3, False), (".png", 16, 3, True),
                                                           (".tif", 16, 1, False), (".tif", 8, 3, False),
                                                           (".png", 8, 1, True)])
def test_lazy_rows_header_and_row_stores_match_the_whole_image_path(tmp_path, suffix, bit_depth, colour, alpha):
    array = _random_uint(37, 29, colour + alpha, bit_depth)
    path = _write_array(tmp_path / f"a{suffix}", array, colour)
    eager, lazy = io.read_image(path), io.read_image(path, lazy=True)
    assert lazy.pixels is None and lazy.size == (37, 29) and lazy.channels == colour and lazy.has_alpha == alpha
    assert torch.equal(torch.cat([lazy.rows(0, 10), lazy.rows(10, 37)], 2), eager.pixels)
    if alpha:
        assert torch.equal(lazy.alpha_rows(5, 9), eager.alpha[..., 5:9, :])
    assert io.read_header(path) == io.Header(37, 29, colour, alpha, bit_depth)
    for file in (None, tmp_path / ".samples.tmp"):  # in memory, and in a file mapped a block at a time
        store = io.RowStore(array.shape, array.dtype, file)
        for y0 in range(0, 37, 8):
            store[y0 : y0 + 8] = array[y0 : y0 + 8]
        assert np.array_equal(store[0:37], array)
        io.write_array(tmp_path / f"b{suffix}", store)
        store.close()
        assert (tmp_path / f"b{suffix}").read_bytes() == path.read_bytes()
    assert not (tmp_path / ".samples.tmp").exists()
