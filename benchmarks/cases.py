"""The Table 1 test cases every benchmark shares: which photos, how they are cropped, and each case's fixed
degradation seed (so every method, in every benchmark, sees the same input)."""

from __future__ import annotations

import zlib
from pathlib import Path

from torch import Tensor

from benchmarks.settings import degrade
from benchmarks.table1_report import quantize
from flowprior.io import read_image

CROP_IMAGES = ("kodak/kodim02.tif", "kodak/kodim07.tif", "sporco/kodim23.png", "sporco/monarch.png",
               "sporco/sail.png", "sporco/tulips.png", "opencv/baboon.jpg", "opencv/fruits.jpg")
FULL_IMAGES = ("libjxl/cvo9xd_keong_macan_srgb8.png", "libjxl/u76c0g_bliznaca_srgb8.png")
CROP_SIZE = 256


def load_test_set(root: str | Path, image_set: str, names: list[str] | None = None) -> dict[str, Tensor]:
    """{name: (1, 3, H, W) clean image}: centre crops (``"256crops"``, or another ``"<N>crops"``) or whole images
    (``"full"``).

    Args:
        root: the ``data/test`` folder (``scripts/fetch_training_data.py --test-images``).
        image_set: ``"<N>crops"`` (the table uses 256; smaller sides are for smoke tests) or ``"full"``.
        names: restrict to these stems (e.g. ``["monarch"]``).
    """
    crop = int(image_set[:-5]) if image_set.endswith("crops") and image_set[:-5].isdigit() else None
    if image_set != "full" and not crop:
        raise ValueError(f"unknown image set {image_set!r}; use {CROP_SIZE}crops (or another <N>crops) or full")
    files = FULL_IMAGES if image_set == "full" else CROP_IMAGES
    images = {}
    for rel in files:
        name = Path(rel).stem
        if names and name not in names:
            continue
        path = Path(root) / rel
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing; run scripts/fetch_training_data.py --test-images {root}")
        x = read_image(path).pixels
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        if crop:
            top, left = (x.shape[2] - crop) // 2, (x.shape[3] - crop) // 2
            x = x[:, :, top:top + crop, left:left + crop]
        images[name] = x.contiguous()
    return images


def case_seed(image_set: str, name: str, setting: str) -> int:
    """A fixed seed per (image set, image, setting), stable across runs and machines."""
    return zlib.crc32(f"{image_set}/{name}/{setting}".encode()) % 2**31


def degraded_case(clean: Tensor, image_set: str, name: str, setting: str) -> tuple[Tensor, Tensor | None, int]:
    """(degraded, observed mask or None, seed) of one Table 1 case: degraded with the case's fixed seed and
    quantized to 8 bits, as the stored file every method reads."""
    seed = case_seed(image_set, name, setting)
    degraded, mask = degrade(clean, setting, seed)
    return quantize(degraded).float(), mask, seed
