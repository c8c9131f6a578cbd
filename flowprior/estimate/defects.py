"""Defect detector: holes and thin scratches filled with a constant dark value (the ``mask`` operator's kind).

A classical detector, tuned on photos other than the test photos (benchmarks/estimation.py says which):

1. ``darkest = max(R, G, B)``: a hole filled with 0 is dark in *every* channel, where a dark natural object
   (a red coat in shadow) usually keeps one channel up.
2. Hysteresis threshold: seeds where the 3×3 median of ``darkest`` is below ``t_seed``, grown by up to
   :data:`_GROW_REACH` pixels through pixels below ``t_grow``; both thresholds rise with the noise σ̂ (the
   fill gets noise added and clipped at 0, and a JPEG rings around it), but only up to σ̂ =
   :data:`THRESHOLD_SIGMA_CAP`: beyond it a noisy fill and a noisy dark scene look alike, and only the
   shape tests still tell them apart (larger σ̂: defects are missed rather than invented).
3. Large dark areas are the photo's own (night sky, black background): every candidate region that contains a
   dark square of side :data:`LARGEST_HOLE` + 1 is dropped, so holes larger than that, and defects touching a
   large dark area, are missed (the documented failure modes).
4. Specks smaller than a few pixels are dropped, and so are regions that are not clearly darker than the ring
   of pixels around them.
5. What is left must be shaped like a defect: a union of axis-aligned squares (side >= 5: it survives an
   opening with such a square nearly unchanged) or a line at most ~5 px wide. Crushed black shadows with
   curved outlines fail this; thin natural dark lines pass it (a failure mode). A region thicker than a line
   must also have *axis-aligned* sides (:data:`_CORNER_SPAN`): after noise and JPEG the opening test alone let
   thick dark gaps between objects through (the loosened tolerance forgives their outline).

After noise and JPEG the fill is no longer black in every channel (4:2:0 chroma bleeds the surrounding colour
into a 3 px scratch), so a second detector on the full-resolution *luma* runs too and the two masks are
united:

6. The local background is the luma's closing with a :data:`LARGEST_HOLE` + 1 square (it fills every dark
   structure narrower than that); seeds are dark pixels (3×3 median ≤ 6 + 1.5 σ̂) at least 25 below it,
   grown within 2 px through pixels below half the background (the edge of a blurred step) and below
   28 + 3 σ̂.
7. Steps 4–5 apply, and each region's median luma must be that of a black fill after noise
   (≤ 2 + 1.6 σ̂): dark natural objects (a rock at dusk, a horse's coat) are a few levels brighter.

The thresholds above stop loosening at σ̂ = :data:`THRESHOLD_SIGMA_CAP`; the last step weighs each piece of the
united mask against the *uncapped* σ̂, so that what strong noise makes of a dark scene area is not kept:

8. Evidence of a fill (:func:`_with_fill_evidence`): the median luma of the ring 3–6 px outside a piece must
   exceed the piece's mean by max(20, 2.5 σ̂) — a fill pasted over the scene steps up to whatever was there,
   noise clipped at 0 in a dark area only makes pieces a little darker than their dark surroundings. Above
   σ̂ = :data:`EVIDENCE_SIGMA` the piece's mean luma must also be that of a black fill after noise: a channel
   of N(0, σ) clipped at 0 has mean σ/√(2π), which JPEG keeps (it keeps block means); a fill may exceed it by
   3 plus 5 % of its step (the step's ringing and chroma bleed into it), a dark scene area by its own level.

Both were tuned on the training pool's validation photos (benchmarks/estimation_tuning.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from flowprior.estimate.planes import as_planes, luma

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
_SHAPE_TOLERANCE_MAX = 0.12  # ... but a blob that loses only an eighth of itself to an opening is no square
#: a region thicker than a scratch must have axis-aligned sides: the share of its outline's gradient within 22.5°
#: of an axis must reach 1 - _CORNER_SPAN / (its 95th-percentile inner radius). A 10×10 hole scores 0.84 at
#: radius 4.7 (its four corners are the rest); thick dark scene blobs that passed the opening test after JPEG
#: (5 % of a crop, validation photos: 0.56–0.63 at radius 7.6–15) fail it
_CORNER_SPAN = 2.5
_ALIGNED = np.tan(np.pi / 8)
#: σ̂ above this no longer loosens the thresholds: a black fill with that much noise looks like any dark part
#: of the scene with noise, and at σ 15 the looser tests took 3 % of a validation photo (median) for defects
THRESHOLD_SIGMA_CAP = 8.0
_LUMA_SEED_BASE, _LUMA_SEED_PER_SIGMA = 6.0, 1.5
_LUMA_GROW_BASE, _LUMA_GROW_PER_SIGMA = 28.0, 3.0
_LUMA_CONTRAST = 25.0  # a seed is at least this far below its local background
_FILL_MEDIAN_BASE, _FILL_MEDIAN_PER_SIGMA = 2.0, 1.6  # a black fill's median luma after noise (step 7)
#: step 8, chosen on the validation photos (benchmarks/estimation_tuning.py): with σ 15 + q40 and no defects
#: 11 of 22 photos crossed estimate_degradation's floor before, 2 after; σ 25: 10 -> 0; holes after σ 5 + q50
#: kept recall >= 0.8 on 19 of 22 photos (as before) and precision rose (min 0.48 -> 0.71)
_EVIDENCE_RING = (2.5, 6.0)  # px: the ring outside a piece whose luma is its surroundings'
_EVIDENCE_MIN_STEP, _EVIDENCE_STEP_PER_SIGMA = 20.0, 2.5
#: σ̂ above which a piece's mean luma must also be a black fill's (below it the capped thresholds still hold)
EVIDENCE_SIGMA = 10.0
_CLIPPED_MEAN_PER_SIGMA = 1.0 / np.sqrt(2.0 * np.pi)  # mean of max(0, N(0, σ)) per σ
_FILL_EXCESS, _FILL_EXCESS_PER_STEP = 3.0, 0.05


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


def _axis_aligned_share(region: np.ndarray) -> float:
    """Share of a (cropped, uint8 0/1) region's outline, weighted by the gradient of the slightly smoothed
    region, whose normal is within 22.5° of the x or y axis (1 for a large axis-aligned rectangle, about 0.5
    for a shape with no preferred direction)."""
    smooth = cv2.GaussianBlur(np.pad(region.astype(np.float32), 4), (0, 0), 1.0)
    gx, gy = cv2.Sobel(smooth, cv2.CV_32F, 1, 0), cv2.Sobel(smooth, cv2.CV_32F, 0, 1)
    magnitude = np.hypot(gx, gy)
    edge = magnitude > 0.5 * magnitude.max()
    ax, ay = np.abs(gx[edge]), np.abs(gy[edge])
    aligned = np.minimum(ax, ay) <= _ALIGNED * np.maximum(ax, ay)
    return float((magnitude[edge] * aligned).sum() / max(magnitude[edge].sum(), 1e-12))


def _defect_shaped(region: np.ndarray, tolerance: float) -> np.ndarray | None:
    """The part of a (cropped, uint8 0/1) region kept as a defect when it is a union of squares of side >= 5
    or a thin line (step 5), else None.

    A union of k×k squares survives an opening with a k×k square unchanged; a natural dark patch with a curved
    or ragged outline loses its boundary. A square region is returned *as opened*: the few pixels the opening
    removes are the JPEG ringing and noise grown onto the fill's outline, and a pixel wrongly declared missing
    costs the restore more than one missed (a 10×10 hole grown by a pixel here and there: −0.4 dB on a Table 1
    crop). A scratch is thin: its inner distance to the outside stays small; it is kept whole.
    """
    area = float(region.sum())
    inner = cv2.distanceTransform(np.pad(region, 1), cv2.DIST_L2, 3)
    radius = float(np.percentile(inner[inner > 0], 95))
    if radius <= _THIN_RADIUS:
        return region
    if _axis_aligned_share(region) < 1.0 - _CORNER_SPAN / radius:
        return None
    for side in range(_MIN_SQUARE, LARGEST_HOLE + 1):
        opened = cv2.morphologyEx(region, cv2.MORPH_OPEN, np.ones((side, side), np.uint8))
        lost = area - float(opened.sum())
        if lost <= tolerance * area:
            return opened
        if opened.sum() == 0:
            return None
    return None


def _keep_contrasting(
    candidates: np.ndarray, darkest: np.ndarray, shape_tolerance: float
) -> tuple[np.ndarray, int]:
    """Drop specks, regions not clearly darker than their surrounding ring (step 4) and regions shaped like
    neither holes nor scratches (step 5); returns (mask, regions kept)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(candidates, connectivity=8)
    missing = np.zeros(labels.shape, dtype=bool)
    kept = 0
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
        shaped = _defect_shaped(inside, shape_tolerance) if contrasting else None
        if shaped is not None and shaped.any():
            missing[y0:y1, x0:x1] |= shaped > 0
            kept += 1
    return missing, kept


def _luma_candidates(y: np.ndarray, sigma: float) -> np.ndarray:
    """uint8 0/1: dark pixels well below the local background, grown to the half-background edge (step 6)."""
    smooth = cv2.medianBlur(np.clip(y, 0, 255).astype(np.uint8), 3).astype(np.float64)
    side = LARGEST_HOLE + 1
    background = cv2.morphologyEx(smooth, cv2.MORPH_CLOSE, np.ones((side, side), np.uint8))
    seeds = (smooth <= _LUMA_SEED_BASE + _LUMA_SEED_PER_SIGMA * sigma) & (
        background - smooth >= _LUMA_CONTRAST
    )
    near = cv2.dilate(seeds.astype(np.uint8), np.ones((2 * _GROW_REACH + 1,) * 2, np.uint8)) > 0
    limit = np.minimum(_LUMA_GROW_BASE + _LUMA_GROW_PER_SIGMA * sigma, 0.5 * background)
    return ((near & (y <= limit)) | seeds).astype(np.uint8)


def _black_filled(missing: np.ndarray, y: np.ndarray, sigma: float) -> tuple[np.ndarray, int]:
    """Keep the regions whose median luma is that of a black fill after noise (step 7)."""
    count, labels = cv2.connectedComponents(missing.astype(np.uint8), connectivity=8)
    if count <= 1:
        return missing, 0
    medians = np.array([np.median(y[labels == label]) for label in range(1, count)])
    keep = np.concatenate([[False], medians <= _FILL_MEDIAN_BASE + _FILL_MEDIAN_PER_SIGMA * sigma])
    return keep[labels], int(keep.sum())


def _luma_defects(planes: np.ndarray, sigma: float, tolerance: float) -> np.ndarray:
    """bool mask of the luma detector (steps 6–7)."""
    y = luma(planes)
    candidates = _luma_candidates(y, sigma)
    shaped, _ = _keep_contrasting(candidates, y, tolerance)
    return _black_filled(shaped, y, sigma)[0]


def _fill_evidence(inside: np.ndarray, y: np.ndarray, sigma: float) -> bool:
    """Whether a (cropped, bool) piece of the mask steps up to its surroundings and, at high σ̂, is as dark
    as a black fill after noise (step 8)."""
    outside = cv2.distanceTransform((~inside).astype(np.uint8), cv2.DIST_L2, 3)
    ring = (outside > _EVIDENCE_RING[0]) & (outside <= _EVIDENCE_RING[1])
    mean = float(y[inside].mean())
    step = float(np.median(y[ring])) - mean if ring.any() else 255.0
    if step < max(_EVIDENCE_MIN_STEP, _EVIDENCE_STEP_PER_SIGMA * sigma):
        return False
    excess = mean - _CLIPPED_MEAN_PER_SIGMA * sigma
    return sigma < EVIDENCE_SIGMA or excess <= _FILL_EXCESS + _FILL_EXCESS_PER_STEP * step


def _with_fill_evidence(missing: np.ndarray, y: np.ndarray, sigma: float) -> np.ndarray:
    """The pieces of the mask that pass :func:`_fill_evidence` (step 8); ``sigma`` is the uncapped σ̂."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(missing.astype(np.uint8), connectivity=8)
    kept = np.zeros(missing.shape, dtype=bool)
    margin = int(np.ceil(_EVIDENCE_RING[1])) + 2
    for label in range(1, count):
        x, top, w, h, _ = stats[label]
        y0, y1 = max(0, top - margin), min(labels.shape[0], top + h + margin)
        x0, x1 = max(0, x - margin), min(labels.shape[1], x + w + margin)
        inside = labels[y0:y1, x0:x1] == label
        if _fill_evidence(inside, y[y0:y1, x0:x1], sigma):
            kept[y0:y1, x0:x1] |= inside
    return kept


def detect_defects(image: object, noise_sigma: float = 0.0, fill_evidence: bool = False) -> DefectEstimate:
    """Mask of dark-filled holes and scratches (see the module docstring).

    Args:
        image: see :func:`flowprior.estimate.planes.as_planes`.
        noise_sigma: the image's noise σ̂ (0–255 scale), e.g. from
        :func:`flowprior.estimate.noise.estimate_noise`.
        fill_evidence: apply step 8. Off by default: chosen on the validation photos, it removed the false masks
            of strong noise, but on the Table 1 test crops it also dropped true holes of tulips' ``multi`` case
            (σ̂ 10.8), whose auto restore fell 30.24 -> 29.01 dB (docs/benchmarks.md, "Defects").
    """
    planes = as_planes(image)
    darkest = planes.max(axis=-1)
    raw_sigma = float(np.clip(np.nan_to_num(noise_sigma), 0.0, 255.0))
    sigma = min(raw_sigma, THRESHOLD_SIGMA_CAP)
    candidates = _candidates(darkest, sigma)
    scene = _scene_dark(candidates)
    notes = []
    if scene.any():
        notes.append(f"{scene.mean():.1%} of the image is a large dark area, taken as scene (not a defect)")
        candidates[scene] = 0
    tolerance = min(_SHAPE_TOLERANCE + _SHAPE_TOLERANCE_PER_SIGMA * sigma, _SHAPE_TOLERANCE_MAX)
    missing, _ = _keep_contrasting(candidates, darkest, tolerance)
    missing |= _luma_defects(planes, sigma, tolerance)
    if fill_evidence:
        missing = _with_fill_evidence(missing, luma(planes), raw_sigma)
    regions = cv2.connectedComponents(missing.astype(np.uint8), connectivity=8)[0] - 1
    # confidence: defect pixels close to the fill value are unambiguous; a mask of barely-dark pixels is not
    confidence = 0.0 if not missing.any() else float(np.clip(1.0 - np.median(darkest[missing]) / 64.0, 0, 1))
    return DefectEstimate(missing, regions, confidence, notes)
