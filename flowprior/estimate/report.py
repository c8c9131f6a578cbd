"""Everything found about an image's damage, composed into an operator spec and its parameters.

:func:`estimate_degradation` runs the estimators in the order their dependencies need: the JPEG history first
(the noise estimator measures on the JPEG grid with its table), a first noise level, the defect mask (its
thresholds scale with the noise), then the noise again without the blocks the defects touch (a filled hole is
neither image nor noise).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from flowprior.estimate.defects import DefectEstimate, detect_defects
from flowprior.estimate.jpeg import detect_jpeg_grid, inspect_jpeg_file
from flowprior.estimate.noise import estimate_noise

#: below this σ̂ (0–255) the image is called noise-free: clean photos measure ≤ 1.5 (docs/benchmarks.md)
NOISE_FLOOR = 1.5
#: below this share of pixels the defect mask is dropped (a few stray dark pixels are not damage)
DEFECT_FLOOR = 1e-4
_DEFECT_MARGIN = 2  # px: blocks this close to a defect are kept out of the noise measurement


def _jpeg_history(image: torch.Tensor, path: str | Path | None) -> dict:
    """The JPEG part of the report; ``table``/``offset`` are internal (for the noise estimator)."""
    info = inspect_jpeg_file(path) if path is not None and Path(path).is_file() else None
    if info is not None:
        confidence = 1.0 if info.match.exact else float(np.exp(-5.0 * info.match.distance))
        return {
            **info.as_dict(),
            "detected": True,
            "confidence": confidence,
            "table": info.luma_table,
            "offset": (0, 0),
        }
    found = detect_jpeg_grid(image)
    return {**found.as_dict(), "subsampling": None, "table": found.luma_table, "offset": found.grid_offset}


def _compose(jpeg: dict, sigma: float, defects: DefectEstimate) -> tuple[str, dict]:
    members, params = [], {}
    if defects.coverage >= DEFECT_FLOOR:
        members.append("mask")
        params["mask.kind"] = "file"  # the path is the caller's to set; the tensor is in the report
    if sigma >= NOISE_FLOOR:
        members.append("noise")
        params["noise.sigma"] = round(sigma, 2)
    if jpeg["detected"]:
        members.append("jpeg")
        params["jpeg.quality"] = int(jpeg["quality"])
        # the operator knows 4:2:0 and 4:4:4; from pixels the subsampling is not measured (libjpeg's default)
        params["jpeg.subsampling"] = "444" if jpeg.get("subsampling") == "444" else "420"
    return "+".join(members) or "identity", params


def estimate_degradation(image: torch.Tensor, path: str | Path | None = None) -> tuple[str, dict, dict]:
    """Estimate what happened to ``image`` and compose it into an operator.

    Args:
        image: (1, C, H, W) or (C, H, W) in [0, 1] (gray, RGB; alpha is ignored), e.g.
        ``read_image(p).pixels``. path: the file it came from; a JPEG file's own tables and subsampling are
        then read instead of guessed.

    Returns:
        ``(spec, params, report)``: e.g. ``("mask+noise+jpeg", {"mask.kind": "file", "noise.sigma": 5.1,
        "jpeg.quality": 50, "jpeg.subsampling": "420"}, report)``. The report holds every estimate with its
        confidence (``noise``, ``jpeg``, ``defects``; JSON-ready) and ``observed_mask``, a (1, 1, H, W)
        float32 tensor (1 = observed) to pass as the mask (mask.kind=file needs it written to a file).
    """
    jpeg = _jpeg_history(image, path)
    table, offset = jpeg.pop("table"), jpeg.pop("offset")
    first = estimate_noise(image, table, offset)
    defects = detect_defects(image, float(np.mean(first.sigma)))
    noise = first
    if defects.missing.any():
        grow = np.ones((2 * _DEFECT_MARGIN + 1,) * 2, np.uint8)
        noise = estimate_noise(
            image, table, offset, exclude=cv2.dilate(defects.missing.astype(np.uint8), grow) > 0
        )
    sigma = float(np.mean(noise.sigma))
    spec, params = _compose(jpeg, sigma, defects)
    mask = torch.from_numpy(defects.observed_mask())[None, None]
    report = {
        "spec": spec,
        "params": params,
        "noise": noise.as_dict(),
        "jpeg": jpeg,
        "defects": defects.as_dict(),
        "observed_mask": mask,
    }
    return spec, params, report
