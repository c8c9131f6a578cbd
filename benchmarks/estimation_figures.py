"""Failure-mode pictures of the defect detector (docs/figures/defects-*.png): input | true mask | detected.

    python -m benchmarks.estimation_figures

Each panel row is a 160×160 crop (centred on the largest error when no corner is given); in the masks white =
defect (missing), red = detected but not a defect, blue = a defect the detector missed.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from benchmarks.estimation import degrade, photo
from flowprior.estimate.defect_net import find_defects
from flowprior.estimate.jpeg import detect_jpeg_grid
from flowprior.estimate.noise import estimate_noise

_AFTER_JPEG = {"noise.sigma": 5, "jpeg.quality": 50}
# the default detector's (flowprior.estimate.defect_net.find_defects, the learned one since session 8) failure
# modes; docs/figures/defects-black-background.png, -holes-after-jpeg.png and -strokes-after-jpeg.png are the
# classical detector's, drawn by this script before session 8
CASES = {
    # astronaut's pure-black thin structures (the neck ring's inside) taken for a scratch (red)
    "defects-learned-thin-black-scene": ("astronaut", "mask", {"mask.kind": "strokes"}, 11, None),
    # after noise and JPEG: the holes found, a dark seam of the flag taken for a scratch (red)
    "defects-learned-holes-after-jpeg": ("astronaut", "mask+noise+jpeg", {"mask.kind": "holes", **_AFTER_JPEG}, 11,
                                         None),
    # scratches after noise and JPEG on a textured photo: mostly found, ends and crossings missed
    "defects-learned-strokes-after-jpeg": ("coffee", "mask+noise+jpeg", {"mask.kind": "strokes", **_AFTER_JPEG}, 11,
                                           None),
}
_SIDE = 160


def _largest_error(truth: np.ndarray, found: np.ndarray) -> tuple[int, int]:
    """Top-left corner of the crop centred on the largest connected error (false or missed pixels)."""
    count, _, stats, centroids = cv2.connectedComponentsWithStats((truth ^ found).astype(np.uint8))
    if count <= 1:
        return 0, 0
    x, y = centroids[1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))]
    top = int(np.clip(y - _SIDE / 2, 0, truth.shape[0] - _SIDE))
    return top, int(np.clip(x - _SIDE / 2, 0, truth.shape[1] - _SIDE))


def _overlay(truth: np.ndarray, found: np.ndarray) -> np.ndarray:
    out = np.zeros(truth.shape + (3,), np.uint8)
    out[truth & found] = 255
    out[found & ~truth] = (230, 40, 40)
    out[truth & ~found] = (40, 90, 255)
    return out


def render(name: str, spec: str, params: dict, seed: int, corner: tuple[int, int] | None) -> Image.Image:
    y, observed = degrade(photo(name), spec, params, seed)
    truth = observed[0, 0].numpy() < 0.5
    jpeg = detect_jpeg_grid(y)
    sigma = float(
        np.mean(estimate_noise(y, jpeg.luma_table if jpeg.detected else None, jpeg.grid_offset).sigma)
    )
    found = find_defects(y, sigma).missing
    top, left = _largest_error(truth, found) if corner is None else corner
    crop = (slice(top, top + _SIDE), slice(left, left + _SIDE))
    image = (y[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)[crop]
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    mask_truth = np.repeat((truth[crop] * 255).astype(np.uint8)[..., None], 3, axis=-1)
    return Image.fromarray(np.concatenate([image, mask_truth, _overlay(truth[crop], found[crop])], axis=1))


def main() -> None:
    folder = Path("docs/figures")
    folder.mkdir(parents=True, exist_ok=True)
    for stem, case in CASES.items():
        render(*case).save(folder / f"{stem}.png", optimize=True)
        print(f"wrote {folder / stem}.png")


if __name__ == "__main__":
    main()
