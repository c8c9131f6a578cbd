"""Development test images (never trained on): which package holds which file, under which licence.

Used by ``fetch_training_data.py --test-images DIR``; see ``shared/DATA.md``. Files are copied
byte for byte (no re-encoding), so the sha256 in the manifest matches the packaged file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from fetch_training_data import Item, Source, _copyright
from unpack_formats import dep5_licence

# (path inside the package, output name, licence; None = look it up in the DEP-5 copyright file)
Pick = tuple[str, str, "str | None"]

_KODAK = "Eastman Kodak Company, released for unrestricted use"
_TIFF = "usr/share/cargo/registry/tiff-0.7.3/tests/benches"
_CV = "usr/share/doc/opencv-doc/examples/data"
_JXL = "usr/share/libjxl-testdata"
_SKI = "skimage/data"
_SPORCO_NOTE = "see sporco/data/README.rst: "


def _pick(files: list[Pick]) -> Callable[[Path], Iterator[Item]]:
    def extract(root: Path) -> Iterator[Item]:
        cr = _copyright(root)
        for rel, name, licence in files:
            path = root / rel
            if not path.is_file():
                raise FileNotFoundError(f"{rel} is not in the package")
            yield Item(name, path.read_bytes(), rel, licence or dep5_licence(cr, rel) or "unknown")

    return extract


TEST_SOURCES: dict[str, Source] = {
    "kodak": Source("librust-tiff-dev", "0.7.3-1", "deb", _pick([
        (f"{_TIFF}/kodim02-lzw.tif", "kodim02.tif", _KODAK),
        (f"{_TIFF}/kodim07-lzw.tif", "kodim07.tif", _KODAK),
    ])),
    "sporco": Source("sporco", "0.2.2.post1", "wheel", _pick([
        ("sporco/data/kodim23.png", "kodim23.png", _SPORCO_NOTE + _KODAK),
        ("sporco/data/monarch.png", "monarch.png", _SPORCO_NOTE + "Waterloo BragZone, free of copyright"),
        ("sporco/data/sail.png", "sail.png", _SPORCO_NOTE + "Waterloo BragZone, free of copyright"),
        ("sporco/data/tulips.png", "tulips.png", _SPORCO_NOTE + "Waterloo BragZone, free of copyright"),
        ("sporco/data/barbara.png", "barbara.png", _SPORCO_NOTE + "attributed to Allen Gersho, "
                                                                  "believed freely redistributable"),
    ])),
    "opencv": Source("opencv-doc", "4.6.0+dfsg-12", "deb", _pick([
        (f"{_CV}/{n}", n, None) for n in ("baboon.jpg", "fruits.jpg", "building.jpg", "butterfly.jpg",
                                          "smarties.png")
    ])),
    "libjxl": Source("libjxl-testdata", "0.0~git20230110.d6168ff-1", "deb", _pick([
        (f"{_JXL}/jxl/flower/flower.png", "flower.png", None),
        (f"{_JXL}/jxl/flower/flower.png.im_q85_420.jpg", "flower_q85_420.jpg", None),
        (f"{_JXL}/jxl/flower/flower.png.im_q85_444.jpg", "flower_q85_444.jpg", None),
    ] + [(f"{_JXL}/external/wesaturate/500px/{n}.png", f"{n}.png", None)
         for n in ("cvo9xd_keong_macan_srgb8", "tmshre_riaphotographs_srgb8", "u76c0g_bliznaca_srgb8")])),
    "skimage": Source("scikit-image", "0.26.0", "wheel", _pick([
        (f"{_SKI}/astronaut.png", "astronaut.png", "public domain (NASA)"),
        (f"{_SKI}/coffee.png", "coffee.png", "CC0 (Rachel Michetti)"),
        (f"{_SKI}/chelsea.png", "chelsea.png", "CC0 (Stefan van der Walt)"),
        (f"{_SKI}/rocket.jpg", "rocket.jpg", "public domain (SpaceX)"),
        (f"{_SKI}/motorcycle_left.png", "motorcycle_left.png",
         "Middlebury 2014 stereo benchmark (Scharstein et al.), as redistributed by scikit-image"),
        (f"{_SKI}/camera.png", "camera.png", "CC0 (Lav Varshney)"),
        (f"{_SKI}/coins.png", "coins.png", "no known copyright restrictions"),
        (f"{_SKI}/moon.png", "moon.png", "as redistributed by scikit-image (BSD-3-Clause package)"),
        (f"{_SKI}/brick.png", "brick.png", "CC0 (CC0Textures)"),
        (f"{_SKI}/grass.png", "grass.png", "CC0 (CC0Textures)"),
        (f"{_SKI}/gravel.png", "gravel.png", "CC0 (CC0Textures)"),
    ])),
    "sklearn": Source("scikit-learn", "1.5.2", "wheel", _pick([
        ("sklearn/datasets/images/china.jpg", "china.jpg", "CC-BY-2.0 (danielbuechele on Flickr)"),
        ("sklearn/datasets/images/flower.jpg", "flower_sklearn.jpg", "CC-BY-2.0 (vultilion on Flickr)"),
    ])),
    "matplotlib": Source("matplotlib", "3.9.2", "wheel", _pick([
        ("matplotlib/mpl-data/sample_data/grace_hopper.jpg", "grace_hopper.jpg",
         "public domain (US Navy photo)"),
    ])),
}
