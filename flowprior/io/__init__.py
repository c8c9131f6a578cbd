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
Pillow nor OpenCV reads 2-channel 16-bit TIFF. PNG is encoded by :mod:`flowprior.io.codecs` at every bit depth (one
code path for the ``iCCP``/``eXIf`` chunks), and so is 16-bit colour TIFF; the rest goes through Pillow.
Files are written atomically: to a temporary file in the same directory, then ``os.replace``.
:func:`write_array` writes already quantized samples given as rows (a numpy array, a :class:`RowStore` filled band
by band, or :class:`LazyRows`); PNG and 16-bit colour TIFF are then encoded a block of rows at a time.

Quantization (:func:`to_uint` / :func:`from_uint`): ``q = round(clip(x, 0, 1) * (2**b - 1))`` with ties to even,
computed in float64, and ``x = q / (2**b - 1)``; reading then writing at the same bit depth is bit-exact.

Modules: ``image`` (:class:`Image`, :class:`Header`), ``read``, ``write`` (formats, :func:`write_image`,
:func:`write_array`), ``quantize``, ``rows`` (:class:`RowStore`, :class:`LazyRows`), ``atomic``, ``exif``
(:func:`set_exif_text`), and the byte-level ``codecs`` (PNG/TIFF encoders, EXIF orientation) and ``tiff_exif``.
Import from ``flowprior.io``: the names below are its public API.
"""

from flowprior.io.atomic import atomic_write, atomic_write_bytes, temporary_path
from flowprior.io.exif import PROCESSING_SOFTWARE_TAG, set_exif_text
from flowprior.io.image import Header, Image, ImageReadError
from flowprior.io.quantize import from_uint, to_hwc, to_uint
from flowprior.io.read import read_header, read_image
from flowprior.io.rows import LazyRows, RowStore
from flowprior.io.write import OutputFormat, output_format, write_array, write_image

__all__ = [
    "PROCESSING_SOFTWARE_TAG", "Header", "Image", "ImageReadError", "LazyRows", "OutputFormat", "RowStore",
    "atomic_write", "atomic_write_bytes", "from_uint", "output_format", "read_header", "read_image", "set_exif_text",
    "temporary_path", "to_hwc", "to_uint", "write_array", "write_image",
]
