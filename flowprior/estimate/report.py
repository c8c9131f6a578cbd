"""Everything found about an image's damage, composed into an operator spec and its parameters.

:func:`estimate_degradation` runs the estimators in the order their dependencies need: the JPEG history first
(the noise estimator measures on the JPEG grid with its table), a first noise level, the defect mask (its
thresholds scale with the noise), then the noise again without the blocks the defects touch (a filled hole is
neither image nor noise).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from flowprior.estimate.defect_net import find_defects
from flowprior.estimate.defects import DefectEstimate
from flowprior.estimate.jpeg import detect_jpeg_grid, inspect_jpeg_file
from flowprior.estimate.noise import estimate_noise

__all__ = ["DegradationEstimate", "estimate_degradation"]

#: below this σ̂ (0–255) the image is called noise-free: clean photos measure ≤ 1.5 (docs/benchmarks.md)
NOISE_FLOOR = 1.5
#: below this share of pixels the defect mask is dropped: a few dark scene pieces that pass the tests are not
#: damage (validation photos with σ 15 noise: median 0.09 %; the smallest synthetic masks cover over 1 %)
DEFECT_FLOOR = 2e-3
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
    """(spec, params) in the realistic order mask → noise → JPEG, only the members that were found.

    The mask has no parameters here: the restore path takes the tensor itself (``mask=``), and ``mask.kind``
    would make the parser ask for a file.
    """
    members, params = [], {}
    if defects.coverage >= DEFECT_FLOOR:
        members.append("mask")
    if sigma >= NOISE_FLOOR:
        members.append("noise")
        params["noise.sigma"] = round(sigma, 2)
    if jpeg["detected"]:
        members.append("jpeg")
        params["jpeg.quality"] = int(jpeg["quality"])
        # the operator knows 4:2:0 and 4:4:4; from pixels the subsampling is not measured (libjpeg's default)
        params["jpeg.subsampling"] = "444" if jpeg.get("subsampling") == "444" else "420"
    return "+".join(members) or "identity", params


@dataclass
class DegradationEstimate:
    """What :func:`estimate_degradation` found; ``parse(spec, params)`` builds the operator.

    Attributes:
        spec: members found, in the order mask → noise → JPEG, e.g. ``"mask+noise+jpeg"``; ``"identity"``
            when nothing was found.
        params: ``member.param`` values for :func:`degradations.parse`, only for members in ``spec``:
            ``noise.sigma`` (0–255, the mean of the per-channel σ̂), ``jpeg.quality`` (IJG 1–100),
            ``jpeg.subsampling`` (``"420"``/``"444"``). The mask has no entry: pass :attr:`mask`.
        mask: (1, 1, H, W) float32, 1 = observed, 0 = missing, when ``"mask"`` is in ``spec``; else None.
        confidence: 0–1 per estimate, always the keys ``"noise"`` (agreement of the frequencies, enough flat
            blocks), ``"jpeg"`` (how far the lattice score clears the threshold, either way; 1 for a file's
            exact libjpeg tables) and ``"mask"`` (how close the masked pixels are to a black fill; 0 when
            no mask was found).
        report: every estimate in detail (JSON-ready): ``noise`` (σ̂ per channel, method, blocks), ``jpeg``
            (quality, tables, grid offset, source), ``defects`` (coverage, regions, notes).
    """

    spec: str
    params: dict
    mask: torch.Tensor | None
    confidence: dict[str, float]
    report: dict = field(repr=False)


def estimate_degradation(image: torch.Tensor, path: str | Path | None = None) -> DegradationEstimate:
    """Estimate what happened to ``image`` and compose it into an operator (see :class:`DegradationEstimate`).

    Args:
        image: (1, C, H, W) or (C, H, W) in [0, 1] (gray, RGB; alpha is ignored), e.g.
            ``read_image(p).pixels``.
        path: the file it came from; a JPEG file's own tables and subsampling are then read instead of
            estimated from the pixels.

    Example: a photo with σ 15 noise saved at JPEG q 40 gives ``spec == "noise+jpeg"``, ``params ==
    {"noise.sigma": 14.6, "jpeg.quality": 40, "jpeg.subsampling": "420"}``, ``mask is None``.
    """
    jpeg = _jpeg_history(image, path)
    table, offset = jpeg.pop("table"), jpeg.pop("offset")
    first = estimate_noise(image, table, offset)
    defects = find_defects(image, float(np.mean(first.sigma)))
    noise = first
    if defects.missing.any():
        grow = np.ones((2 * _DEFECT_MARGIN + 1,) * 2, np.uint8)
        noise = estimate_noise(
            image, table, offset, exclude=cv2.dilate(defects.missing.astype(np.uint8), grow) > 0
        )
    spec, params = _compose(jpeg, float(np.mean(noise.sigma)), defects)
    found_mask = "mask" in spec.split("+")
    mask = torch.from_numpy(defects.observed_mask())[None, None] if found_mask else None
    confidence = {
        "noise": round(noise.confidence, 3),
        "jpeg": round(float(jpeg.get("confidence", 0.0)), 3),
        "mask": round(defects.confidence, 3),
    }
    report = {"noise": noise.as_dict(), "jpeg": jpeg, "defects": defects.as_dict()}
    return DegradationEstimate(spec, params, mask, confidence, report)
