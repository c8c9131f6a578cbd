"""JPEG history: tables, subsampling and IJG quality of a JPEG file, or of pixels that were once a JPEG.

From a file (:func:`inspect_jpeg_file`): the tables are read from the stream (Pillow's ``quantization``,
natural order) and compared with the tables libjpeg builds for every quality 1–100 (:func:`ijg_tables`): an
exact match is a libjpeg-made file at that quality; otherwise the nearest quality and its distance (the mean
absolute log ratio of the entries, so 0.1 ≈ entries 10 % off) are reported.

From pixels (:func:`detect_jpeg_grid`): decoded JPEG pixels keep the quantizer's fingerprint — the 8×8 DCT of
the luma on the encoder's block grid is (up to the decoder's rounding) a multiple of the table entry at each
frequency. For a quantizer step ``Q`` the "lattice score" of a frequency is ``2·P(|r| < ¼) − 1``, with ``r``
the offset of each clearly nonzero coefficient to its nearest multiple of ``Q`` (in steps): near 1 on the true
grid with the true step, near 0 otherwise. The grid offset is the one with the strongest lattice; the quality
is the *coarsest* IJG table whose steps fit within a tolerance of the best fit (finer tables whose steps
divide the true ones fit too, which is why the coarsest is taken). Never-compressed pixels have no lattice,
which is the detection test.

A JPEG so coarse that most of its blocks decode constant (a smooth photo at q ≤ 50) shows too few textured blocks
for the lattice, and where it was cut from an older JPEG the older, finer grid at another offset wins the lattice
search. Such an image is found by its constant blocks instead: on the encoder's grid their share exceeds the share
at the other 63 offsets (a never-compressed photo's few constant blocks, clipping aside, favour no offset); that
grid is taken, and the quality is scored with the constant blocks' DC in the lattice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image, JpegImagePlugin

from degradations.functional.jpeg import quantization_tables
from flowprior.estimate.planes import BLOCK, as_planes, block_dct, luma

QUALITIES = np.arange(1, 101)
#: zig-zag order of the first 15 frequencies (DC first): where nearly every photo has coefficients to measure
_LOW_FREQUENCIES = ((0, 0), (0, 1), (1, 0), (2, 0), (1, 1), (0, 2), (0, 3), (1, 2), (2, 1), (3, 0),
                    (4, 0), (3, 1), (2, 2), (1, 3), (0, 4))  # fmt: skip
_MIN_MEASURABLE_BLOCKS = 400
_MIN_NONZERO = 100  # coefficients needed before a frequency's lattice strength is trusted
_FIT_TOLERANCE = 0.05  # a table fits when its lattice score is within this of the best table's
_HIGHEST_PIXEL_QUALITY = 95  # above this the steps are 1–2 and every image "fits": not decidable from pixels
#: lattice score above which pixels are called JPEG-compressed
DETECTION_THRESHOLD = 0.18  # 1.5× the highest never-compressed score on the tuning photos (0.12)
# share of constant blocks on one grid above the median share over all 64: 0.12–0.63 on smooth validation crops
# JPEG'd at q 10–50; on never-compressed test photos ≤ 0.006, ≤ 0.021 blurred by σ 32 (docs/benchmarks.md)
FLAT_GRID_EXCESS = 0.05
_FLAT_AC_ENERGY = 1.0  # a block whose AC energy is below this decoded constant (rounding aside)
# on the known grid a coefficient the quantizer zeroed decodes within this of 0: pixel rounding moves a DC by up to
# 4 (8 × ½), the colour conversion a little more; a coarser candidate step that would zero larger values is wrong
_DECODED_ZERO = 8.0
_FLAT_WINDOW = 1024  # 16k blocks decide the constant-block grid; a 50-megapixel scan need not be read 64 times
_SUBSAMPLING_NAMES = {0: "444", 1: "422", 2: "420"}


@lru_cache(maxsize=1)
def ijg_tables() -> tuple[np.ndarray, np.ndarray]:
    """(luma, chroma) tables libjpeg builds for qualities 1–100, each (100, 8, 8) int64, natural order."""
    luma_t, chroma_t = quantization_tables(torch.from_numpy(QUALITIES))
    return luma_t.numpy(), chroma_t.numpy()


@dataclass
class QualityMatch:
    """The IJG quality nearest to a pair of tables; ``distance`` 0 means an exact libjpeg table."""

    quality: int
    distance: float
    exact: bool


def ijg_quality(luma_table: np.ndarray, chroma_table: np.ndarray | None = None) -> QualityMatch:
    """Nearest IJG quality to the given (8, 8) tables (mean absolute log ratio of the entries)."""
    luma_all, chroma_all = ijg_tables()
    given = np.log(np.maximum(np.asarray(luma_table, dtype=np.float64).reshape(1, BLOCK, BLOCK), 1))
    distance = np.abs(np.log(luma_all) - given).mean(axis=(1, 2))
    exact = (luma_all == np.asarray(luma_table).reshape(1, BLOCK, BLOCK)).all(axis=(1, 2))
    if chroma_table is not None:
        chroma = np.log(np.maximum(np.asarray(chroma_table, dtype=np.float64).reshape(1, BLOCK, BLOCK), 1))
        distance = (distance + np.abs(np.log(chroma_all) - chroma).mean(axis=(1, 2))) / 2
        exact &= (chroma_all == np.asarray(chroma_table).reshape(1, BLOCK, BLOCK)).all(axis=(1, 2))
    best = int(np.argmin(distance))
    return QualityMatch(int(QUALITIES[best]), float(distance[best]), bool(exact[best]))


@dataclass
class JpegFileInfo:
    """What a JPEG file says about its own compression."""

    luma_table: np.ndarray
    chroma_table: np.ndarray | None
    subsampling: str
    match: QualityMatch
    progressive: bool
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "source": "file",
            "quality": self.match.quality,
            "exact_ijg": self.match.exact,
            "distance": round(self.match.distance, 4),
            "subsampling": self.subsampling,
            "progressive": self.progressive,
            "luma_table": self.luma_table.tolist(),
            "chroma_table": None if self.chroma_table is None else self.chroma_table.tolist(),
            "notes": self.notes,
        }


def _subsampling(im: Image.Image) -> str:
    if len(im.layer) == 1:
        return "gray"
    code = JpegImagePlugin.get_sampling(im)
    return _SUBSAMPLING_NAMES.get(code, "other")


def inspect_jpeg_file(path: str | Path) -> JpegFileInfo | None:
    """The tables, subsampling and IJG quality of a JPEG file; None when the file is not a JPEG.

    Raises:
        OSError: when the file cannot be read.
    """
    with Image.open(path) as im:
        if im.format not in ("JPEG", "MPO"):
            return None
        tables = {k: np.asarray(v, dtype=np.int64).reshape(BLOCK, BLOCK) for k, v in im.quantization.items()}
        subsampling = _subsampling(im)
        progressive = bool(im.info.get("progressive") or im.info.get("progression"))
        # the table of the first component is the luma's; the second (if any) the chroma's
        component_tables = [tq for (_, _, _, tq) in im.layer]
    luma_t = tables[component_tables[0]]
    chroma_t = tables[component_tables[1]] if len(component_tables) > 1 else None
    match = ijg_quality(luma_t, chroma_t)
    notes = []
    if not match.exact:
        notes.append(
            f"not libjpeg's tables: nearest IJG quality {match.quality}, distance {match.distance:.3f}"
        )
    else:
        same = _qualities_with_tables(luma_t, chroma_t)
        if len(same) > 1:
            notes.append(f"qualities {same[0]}-{same[-1]} give these same tables")
    return JpegFileInfo(luma_t, chroma_t, subsampling, match, progressive, notes)


def _qualities_with_tables(luma_t: np.ndarray, chroma_t: np.ndarray | None) -> list[int]:
    luma_all, chroma_all = ijg_tables()
    same = (luma_all == luma_t).all(axis=(1, 2))
    if chroma_t is not None:
        same &= (chroma_all == chroma_t).all(axis=(1, 2))
    return [int(q) for q in QUALITIES[same]]


@dataclass
class PixelJpegEstimate:
    """JPEG history read from decoded pixels."""

    detected: bool
    score: float  # lattice strength of the best table on the best grid (0 none … 1 perfect)
    grid_offset: tuple[int, int]
    quality: int | None
    luma_table: np.ndarray | None
    confidence: float
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "source": "pixels",
            "detected": self.detected,
            "score": round(self.score, 4),
            "grid_offset": list(self.grid_offset),
            "quality": self.quality,
            "luma_table": None if self.luma_table is None else self.luma_table.tolist(),
            "confidence": round(self.confidence, 3),
            "notes": self.notes,
        }


def _lattice_strength(values: np.ndarray, step: float, zero: float = np.inf) -> float:
    """How much the clearly nonzero values crowd onto multiples of ``step``: 1 = all on them, ≈ 0 = no
    lattice.

    Each value ``|c| ≥ min(step/2, zero)`` has an offset ``r`` to its nearest multiple, in [−½, ½] steps; the
    score is ``2·P(|r| < ¼) − 1``. The window is symmetric about every multiple, so a density that merely falls
    with ``|c|`` (every photo's DCT coefficients) cancels to first order instead of faking a lattice, as a phase
    average would. ``zero``: the largest value that is still a decoded zero (rounding), where the grid is known;
    then a value between it and half a step counts against the step. NaN when fewer than :data:`_MIN_NONZERO`
    values are kept.
    """
    magnitude = np.abs(values) / step
    kept = magnitude[magnitude >= min(0.5, zero / step)]
    if kept.size < _MIN_NONZERO:
        return float("nan")
    near = np.abs(kept - np.round(kept)) < 0.25
    return float(2.0 * near.mean() - 1.0)


def _clipped_samples(planes: np.ndarray, offset: tuple[int, int]) -> np.ndarray:
    """(n,) samples clipped to 0 or 255 (any channel) in each block of :func:`block_dct`'s grid at ``offset``."""
    oy, ox = offset
    h = (planes.shape[0] - oy) // BLOCK * BLOCK
    w = (planes.shape[1] - ox) // BLOCK * BLOCK
    crop = planes[oy : oy + h, ox : ox + w].reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK, -1)
    return ((crop <= 0.5) | (crop >= 254.5)).sum(axis=(1, 3, 4)).reshape(-1)


def _ac_energy(coef: np.ndarray) -> np.ndarray:
    return (coef**2).sum(axis=(1, 2)) - coef[:, 0, 0] ** 2


def _measurable_blocks(
    planes: np.ndarray, plane: np.ndarray, offset: tuple[int, int], keep_constant: bool = False
) -> np.ndarray:
    """(n, 8, 8) luma DCTs of the blocks that can show the quantizer's lattice.

    Left out: constant blocks (their DC is 8× an integer pixel value on *any* grid, a lattice of step 8 that
    says nothing about the JPEG grid; ``keep_constant`` keeps the unclipped ones, once the grid is known from
    them) and blocks with a pixel clipped to 0 or 255 in any channel (the decoder's clamp moved it off the
    lattice; heavy noise before compression clips many) — unless that would leave fewer than
    :data:`_MIN_MEASURABLE_BLOCKS`; then the least clipped blocks are kept.
    """
    coef = block_dct(plane, offset).reshape(-1, BLOCK, BLOCK)
    if coef.shape[0] == 0:
        return coef
    clipped = _clipped_samples(planes, offset)
    textured = _ac_energy(coef) > _FLAT_AC_ENERGY
    # under heavy noise nearly every block has a clipped sample: then take the least clipped ones
    enough = min(int(textured.sum()), _MIN_MEASURABLE_BLOCKS)
    allowed = np.sort(clipped[textured])[enough - 1] if enough > 0 else 0
    kept = textured & (clipped <= allowed)
    if keep_constant:
        kept |= ~textured & (clipped == 0)
    return coef[kept]


def _flat_grid(planes: np.ndarray, plane: np.ndarray) -> tuple[tuple[int, int], float]:
    """The grid offset with the most unclipped constant blocks, and how far its share exceeds the median share
    over all 64 offsets (see the module docstring). Measured on a central window of at most
    :data:`_FLAT_WINDOW` pixels a side (its corner on a multiple of 8, so that offsets are the whole image's)."""
    top, left = ((n - min(n, _FLAT_WINDOW)) // 2 // BLOCK * BLOCK for n in plane.shape[:2])
    plane = plane[top : top + _FLAT_WINDOW, left : left + _FLAT_WINDOW]
    planes = planes[top : top + _FLAT_WINDOW, left : left + _FLAT_WINDOW]
    shares = {}
    for offset in ((dy, dx) for dy in range(BLOCK) for dx in range(BLOCK)):
        oy, ox = offset
        h = (plane.shape[0] - oy) // BLOCK * BLOCK
        w = (plane.shape[1] - ox) // BLOCK * BLOCK
        if h <= 0 or w <= 0:
            shares[offset] = 0.0
            continue
        blocks = plane[oy : oy + h, ox : ox + w].reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK)
        # the AC energy of an orthonormal DCT is the block's sum of squared deviations (Parseval), without a DCT
        ac = ((blocks - blocks.mean(axis=(1, 3), keepdims=True)) ** 2).sum(axis=(1, 3)).reshape(-1)
        flat = (ac <= _FLAT_AC_ENERGY) & (_clipped_samples(planes, offset) == 0)
        shares[offset] = float(flat.mean())
    best = max(shares, key=shares.get)
    return best, shares[best] - float(np.median(list(shares.values())))


def _step_strengths(blocks: np.ndarray, frequencies, steps: dict, zero: float = np.inf) -> dict:
    """{(u, v, step): lattice strength} for each frequency and each of its candidate steps."""
    return {
        (u, v, q): _lattice_strength(blocks[:, u, v], float(q), zero)
        for u, v in frequencies
        for q in steps[u, v]
    }


def _table_scores(
    blocks: np.ndarray, qualities: np.ndarray, min_frequencies: int = 3, zero: float = np.inf
) -> np.ndarray:
    """Mean lattice strength over :data:`_LOW_FREQUENCIES` of each quality's IJG luma table (0 when fewer than
    ``min_frequencies`` have enough nonzero coefficients to measure; ``zero`` as in :func:`_lattice_strength`)."""
    tables = ijg_tables()[0][qualities - 1]
    steps = {(u, v): sorted(set(tables[:, u, v].tolist())) for u, v in _LOW_FREQUENCIES}
    strength = _step_strengths(blocks, _LOW_FREQUENCIES, steps, zero)
    scores = np.zeros(len(qualities))
    for i, table in enumerate(tables):
        measured = [strength[u, v, int(table[u, v])] for u, v in _LOW_FREQUENCIES]
        measured = [m for m in measured if np.isfinite(m)]
        scores[i] = float(np.mean(measured)) if len(measured) >= min_frequencies else 0.0
    return scores


_OFFSET_FREQUENCIES = ((0, 0), (0, 1), (1, 0))
# every step 2–64, plus the coarser ones IJG tables use at low qualities (the DC step is 80 at q10)
_OFFSET_STEPS = {
    (u, v): sorted(set(range(2, 65)) | {int(t) for t in ijg_tables()[0][:, u, v] if t >= 2})
    for u, v in _OFFSET_FREQUENCIES
}
_OFFSET_BLOCKS = 800  # blocks sampled for the grid search (the full set is used for the quality)


def _grid_strength(planes: np.ndarray, plane: np.ndarray, offset: tuple[int, int]) -> float:
    """Mean over a few low frequencies of their best lattice strength over all candidate steps."""
    coef = _measurable_blocks(planes, plane, offset)
    if coef.shape[0] == 0:
        return 0.0
    if coef.shape[0] > _OFFSET_BLOCKS:  # an even spread of blocks, reproducible
        coef = coef[np.linspace(0, coef.shape[0] - 1, _OFFSET_BLOCKS).astype(int)]
    strength = _step_strengths(coef, _OFFSET_FREQUENCIES, _OFFSET_STEPS)
    best = [
        np.nanmax([strength[u, v, q] for q in _OFFSET_STEPS[u, v]] + [0.0]) for u, v in _OFFSET_FREQUENCIES
    ]
    return float(np.mean(best))


def detect_jpeg_grid(image: object) -> PixelJpegEstimate:
    """Was this image once a JPEG, on which 8×8 grid, at which IJG quality (see the module docstring)."""
    planes = as_planes(image)
    plane = luma(planes)
    if plane.shape[0] < 2 * BLOCK or plane.shape[1] < 2 * BLOCK:
        return PixelJpegEstimate(False, 0.0, (0, 0), None, None, 0.0, ["image too small to test for JPEG"])
    # all 64 grids: a grid misaligned in rows shows no lattice, so rows and columns cannot be searched apart
    qualities = np.arange(1, _HIGHEST_PIXEL_QUALITY + 1)
    (row, col), excess = _flat_grid(planes, plane)
    if excess >= FLAT_GRID_EXCESS:  # mostly constant blocks on one grid: its DC lattice carries the quality
        blocks = _measurable_blocks(planes, plane, (row, col), keep_constant=True)
        scores = _table_scores(blocks, qualities, min_frequencies=1, zero=_DECODED_ZERO)
    else:
        offsets = [(dy, dx) for dy in range(BLOCK) for dx in range(BLOCK)]
        row, col = max(offsets, key=lambda offset: _grid_strength(planes, plane, offset))
        scores = _table_scores(_measurable_blocks(planes, plane, (row, col)), qualities)
    best = float(scores.max())
    fitting = qualities[scores >= best - _FIT_TOLERANCE]
    quality = int(fitting.min())
    detected = best >= DETECTION_THRESHOLD
    # confidence: how far the score clears the threshold, on either side
    confidence = float(np.clip(abs(best - DETECTION_THRESHOLD) / DETECTION_THRESHOLD, 0.0, 1.0))
    if not detected:
        return PixelJpegEstimate(False, best, (row, col), None, None, confidence)
    table = ijg_tables()[0][quality - 1]
    return PixelJpegEstimate(True, best, (row, col), quality, table, confidence)
