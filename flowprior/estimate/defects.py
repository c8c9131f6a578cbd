"""Defect detector: holes and thin scratches filled with a constant dark value (the ``mask`` operator's kind).

A classical detector, tuned on photos other than the test photos (benchmarks/estimation.py says which):

1. ``darkest = max(R, G, B)``: a hole filled with 0 is dark in *every* channel, where a dark natural object
   (a red coat in shadow) usually keeps one channel up.
2. Hysteresis threshold: seeds where the 3×3 median of ``darkest`` is below ``t_seed``, grown by up to
   :data:`_GROW_REACH` pixels through pixels below ``t_grow``; both thresholds rise with the noise σ̂ (the
   fill gets noise added and clipped at 0, and a JPEG rings around it).
3. Large dark areas are the photo's own (night sky, black background): every candidate region that contains a
   dark square of side :data:`LARGEST_HOLE` + 1 is dropped, so holes larger than that, and defects touching a
   large dark area, are missed (the documented failure modes).
4. Specks smaller than a few pixels are dropped, and so are regions that are not clearly darker than the ring
   of pixels around them.
5. What is left must be shaped like a defect: a union of axis-aligned squares (side >= 5: it survives an
   opening with such a square nearly unchanged) or a line at most ~5 px wide. Crushed black shadows with
   curved outlines fail this; thin natural dark lines pass it (a failure mode).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from flowprior.estimate.planes import as_planes

#: side (px) of the largest square hole the detector reports; darker areas that hold a larger square are scene
LARGEST_HOLE = 40
_SEED_BASE, _SEED_PER_SIGMA = 4.0, 1.0
_GROW_BASE, _GROW_PER_SIGMA = 24.0, 2.0
_GROW_REACH = 2
_MIN_AREA = 6
_RING = 3
_MIN_CONTRAST = 20.0
_MIN_SQUARE = 5  # smallest hole side the square test knows
_THIN_RADIUS = 2.5  # px: scratches up to ~5 px wide
_SHAPE_TOLERANCE = 0.02  # share of a region an opening may remove and still call it squares (noise-free)
_SHAPE_TOLERANCE_PER_SIGMA = 0.02  # noise and JPEG rag the outline


@dataclass
class DefectEstimate:
    """``missing``: (H, W) bool, True = defect (missing). The solver's mask is its negation (1 = observed)."""

    missing: np.ndarray
    regions: int
    confidence: float
    notes: list[str] = field(default_factory=list)

    @property
    def coverage(self) -> float:
        return float(self.missing.mean()) if self.missing.size else 0.0

    def observed_mask(self) -> np.ndarray:
        """(H, W) float32, 1 = observed, 0 = missing: the ``mask`` operator's convention."""
        return (~self.missing).astype(np.float32)

    def as_dict(self) -> dict:
        return {
            "coverage": round(self.coverage, 5),
            "regions": self.regions,
            "confidence": round(self.confidence, 3),
            "notes": self.notes,
        }


def _candidates(darkest: np.ndarray, sigma: float) -> np.ndarray:
    """uint8 0/1: hysteresis threshold of the darkest channel (step 2)."""
    smooth = cv2.medianBlur(np.clip(darkest, 0, 255).astype(np.uint8), 3).astype(np.float64)
    seeds = (smooth <= _SEED_BASE + _SEED_PER_SIGMA * sigma).astype(np.uint8)
    # growth only within a few pixels of a seed: enough for a fill edge smeared by JPEG or noise, not enough
    # to
    # leak into a dark part of the scene next to it
    near = cv2.dilate(seeds, np.ones((2 * _GROW_REACH + 1,) * 2, np.uint8)) > 0
    grown = (near & (darkest <= _GROW_BASE + _GROW_PER_SIGMA * sigma)) | (seeds > 0)
    return grown.astype(np.uint8)


def _scene_dark(candidates: np.ndarray) -> np.ndarray:
    """bool: candidate pixels connected to a dark square larger than :data:`LARGEST_HOLE` (step 3)."""
    side = LARGEST_HOLE + 1
    kernel = np.ones((side, side), np.uint8)
    large = cv2.morphologyEx(candidates, cv2.MORPH_OPEN, kernel)
    if not large.any():
        return np.zeros(candidates.shape, dtype=bool)
    count, labels = cv2.connectedComponents(candidates, connectivity=8)
    touched = np.zeros(count, dtype=bool)
    touched[np.unique(labels[large > 0])] = True
    touched[0] = False
    return touched[labels]


def _defect_shaped(region: np.ndarray, tolerance: float) -> bool:
    """Is a (cropped, uint8 0/1) region a union of squares of side >= 5 or a thin line (step 5)?

    A union of k×k squares survives an opening with a k×k square unchanged; a natural dark patch with a curved
    or ragged outline loses its boundary. A scratch is thin: its inner distance to the outside stays small.
    """
    area = float(region.sum())
    inner = cv2.distanceTransform(np.pad(region, 1), cv2.DIST_L2, 3)
    if np.percentile(inner[inner > 0], 95) <= _THIN_RADIUS:
        return True
    for side in range(_MIN_SQUARE, LARGEST_HOLE + 1):
        opened = cv2.morphologyEx(region, cv2.MORPH_OPEN, np.ones((side, side), np.uint8))
        lost = area - float(opened.sum())
        if lost <= tolerance * area:
            return True
        if opened.sum() == 0:
            return False
    return False


def _keep_contrasting(
    candidates: np.ndarray, darkest: np.ndarray, shape_tolerance: float
) -> tuple[np.ndarray, int]:
    """Drop specks, regions not clearly darker than their surrounding ring (step 4) and regions shaped like
    neither holes nor scratches (step 5); returns (mask, regions kept)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(candidates, connectivity=8)
    keep = np.zeros(count, dtype=bool)
    ring_kernel = np.ones((2 * _RING + 1, 2 * _RING + 1), np.uint8)
    for label in range(1, count):
        x, y, w, h, area = stats[label]
        if area < _MIN_AREA:
            continue
        y0, y1 = max(0, y - _RING), min(labels.shape[0], y + h + _RING)
        x0, x1 = max(0, x - _RING), min(labels.shape[1], x + w + _RING)
        inside = (labels[y0:y1, x0:x1] == label).astype(np.uint8)
        ring = (cv2.dilate(inside, ring_kernel) > 0) & (labels[y0:y1, x0:x1] == 0)
        patch = darkest[y0:y1, x0:x1]
        contrasting = not ring.any() or np.median(patch[ring]) - np.median(patch[inside > 0]) >= _MIN_CONTRAST
        keep[label] = contrasting and _defect_shaped(inside, shape_tolerance)
    return keep[labels], int(keep.sum())


def detect_defects(image: object, noise_sigma: float = 0.0) -> DefectEstimate:
    """Mask of dark-filled holes and scratches (see the module docstring).

    Args:
        image: see :func:`flowprior.estimate.planes.as_planes`.
        noise_sigma: the image's noise σ̂ (0–255 scale), e.g. from
        :func:`flowprior.estimate.noise.estimate_noise`.
    """
    planes = as_planes(image)
    darkest = planes.max(axis=-1)
    sigma = float(np.clip(np.nan_to_num(noise_sigma), 0.0, 60.0))
    candidates = _candidates(darkest, sigma)
    scene = _scene_dark(candidates)
    notes = []
    if scene.any():
        notes.append(f"{scene.mean():.1%} of the image is a large dark area, taken as scene (not a defect)")
        candidates[scene] = 0
    tolerance = _SHAPE_TOLERANCE + _SHAPE_TOLERANCE_PER_SIGMA * sigma
    missing, regions = _keep_contrasting(candidates, darkest, tolerance)
    # confidence: defect pixels close to the fill value are unambiguous; a mask of barely-dark pixels is not
    confidence = 0.0 if not missing.any() else float(np.clip(1.0 - np.median(darkest[missing]) / 64.0, 0, 1))
    return DefectEstimate(missing, regions, confidence, notes)
