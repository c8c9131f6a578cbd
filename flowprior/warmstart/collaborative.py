"""Collaborative filtering of similar blocks (BM3D, Dabov et al. 2007): a second estimate of a noisy image whose
errors are not the network's.

On self-similar, man-made scenes (a tunnel's ribs, rows of fins, shutters) the learned warm start trails BM3D by up to
3.4 dB at σ 25, while on natural scenes it leads by up to 6 dB; the two estimates' errors are complementary
(docs/benchmarks.md "Where the noise gap to BM3D lives"). What BM3D has that the network lacks is the grouping of
repeated blocks from a wide window. This module computes that estimate on its own, without the network's output as a
pilot (a pilot-matched estimate shares the network's errors and blends worse):

1. **Hard thresholding.** Every ``stride``-th 8x8 block of the noisy image is matched, on the luma, against the blocks
   of a ``(2 radius + 1)²`` window; up to ``group`` blocks closer than a distance threshold form a 3-D group (its size
   a power of two). The group is transformed (the 2-D biorthogonal 1.5 wavelet of each block, as in the paper's
   hard-thresholding step, then an orthonormal transform along the group), coefficients below ``λ σ`` are zeroed, and
   the blocks go back with the weight ``1 / (kept coefficients)``. The wavelet spends fewer coefficients on an edge
   than the DCT (flowprior.warmstart.block_transforms): 32.55 -> 32.64 dB for this estimate alone.
2. **Empirical Wiener filtering.** The same on the first step's estimate (the *basic* estimate) as the guide: groups
   matched on it, blocks in the 2-D DCT, each noisy coefficient ``Y`` kept as ``w Y``, ``w = B² / (B² + v)`` from
   the basic estimate's ``B``, blocks weighted by ``1 / Σ w²``.

Colour images are filtered in an orthonormal opponent colour space (white noise stays white with the same variance),
the blocks matched on its luma. Blocks are aggregated with a Kaiser window. The thresholds are the paper's "normal
profile" ones, translated to [0, 1] values and this module's luma (``(R + G + B) / √3``, whose squared distances are
3x those of BM3D's ``(R + G + B) / 3``). The search window and the stride are smaller than the paper's (31² against
39², 4 against 3; groups of 16 and 32 as there) for speed: 0.5 s a 256² image on 2 threads on a quiet machine. On 16
validation crops at σ 25 the estimate alone (step 1 still in the DCT) gave 32.15 dB with session 15's 15² window and
groups of 16, 32.55 with these, 32.59 with a 39² window (0.58 s) and 32.81 for the ``bm3d`` package (5.2 s); in the
blend with the warm start 31² and groups of 32 gained 0.09 dB over session 15's (docs/benchmarks.md "A wider
collaborative filter").

How much of it to take is SURE's choice, per image (:func:`collaborative_blend`), with one twist: the estimate's
divergence is probed with a finite step so that the matches can change (see there).

Each output pixel depends on the input within ``2 (RADIUS + BLOCK)`` = 46 pixels (two matchings): the strips of tall
images carry 48 rows of context, and the warm start's block loop (flowprior.warmstart.learned) 32, so within 14 pixels
of a block border there a match can be cut off and the values differ slightly from the whole image's.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from flowprior.warmstart.block_transforms import bior15_block, dct_block, group_basis
from flowprior.warmstart.sure import divergence_along, sure_weight_between
from flowprior.warmstart.wiener import _from_opponent, _to_opponent

#: block side
BLOCK = 8
#: search window half-width (the paper: 19, a 39x39 window; module docstring)
RADIUS = 15
#: reference blocks every this many pixels (and the last row and column)
STRIDE = 4
#: largest group: hard-thresholding step, Wiener step
GROUP_HT, GROUP_WIENER = 16, 32
#: the hard threshold in noise stds of a coefficient
LAMBDA_3D = 2.7
#: largest mean squared luma difference of a match, [0, 1] values (the paper's 3000 and 400 on 0-255, x3 for our luma)
MATCH_HT, MATCH_WIENER = 3 * 3000 / 255**2, 3 * 400 / 255**2
#: Kaiser window's β for the aggregation
KAISER_BETA = 2.0
#: the divergence probe's step, in noise stds (module docstring: large enough that the matches change)
PROBE_FRACTION = 0.15
#: the probe's direction is drawn from this seed for every call (a call's β does not depend on what ran before)
PROBE_SEED = 1
#: blocks filtered at once (a group's blocks count): bounds the memory (~0.8 kB of coefficients a block, three channels)
CHUNK = 8192
#: rows filtered at once on tall images, and the rows of context each side: multiples of STRIDE, so the strips'
#: reference blocks lie where the whole image's do, the context ≥ 2 (RADIUS + BLOCK), what an output pixel depends on
STRIP = 192
HALO = -(-2 * (RADIUS + BLOCK) // STRIDE) * STRIDE  # 48


def _kaiser_line() -> Tensor:
    """(8,) the 1-D Kaiser window; the 2-D one is its outer product."""
    return torch.kaiser_window(BLOCK, periodic=False, beta=KAISER_BETA, dtype=torch.float32)


@functools.lru_cache(maxsize=1)
def _kaiser() -> Tensor:
    """(64,) the flattened 8x8 Kaiser window the blocks are put back with."""
    line = _kaiser_line()
    return (line[:, None] * line[None, :]).flatten()


def _reference_positions(n: int) -> Tensor:
    """Top-left coordinates of the reference blocks along one side of ``n`` pixels: every ``STRIDE``-th, and the
    last, so every pixel lies in some reference block."""
    last = n - BLOCK
    positions = list(range(0, last + 1, STRIDE))
    if positions[-1] != last:
        positions.append(last)
    return torch.tensor(positions)


def _block_sums(x: Tensor, dim: int) -> Tensor:
    """Sums of ``BLOCK`` consecutive values of ``x`` along ``dim`` from each reference position
    (:func:`_reference_positions`), from running sums read through strided views: the positions are every
    ``STRIDE``-th but the last, and a gather along the last dimension took twice the running sums' own time."""
    n = x.shape[dim]
    count = (n - BLOCK) // STRIDE + 1  # the positions on the stride
    running = x.cumsum(dim)
    at = [slice(None)] * x.dim()

    def every_stride(start: int, stop: int | None = None) -> Tensor:
        at[dim] = slice(start, stop, STRIDE)
        return running[tuple(at)]

    sums = every_stride(BLOCK - 1).clone()  # running sums at each window's end ...
    sums.narrow(dim, 1, count - 1).sub_(every_stride(STRIDE - 1, (count - 1) * STRIDE))  # ... less those before it
    last = n - BLOCK
    if last % STRIDE:  # the last position, off the stride
        extra = running.select(dim, n - 1) - running.select(dim, last - 1)
        sums = torch.cat([sums, extra.unsqueeze(dim)], dim)
    return sums


def match_blocks(guide: Tensor, group: int, threshold: float, radius: int = RADIUS) -> tuple[Tensor, Tensor]:
    """(each match's top-left corner as a flat index into the (H − 7) x (W − 7) grid of block positions, (R, group)
    sorted by distance with the reference block first; (R,) how many matches each reference keeps: the largest
    power of two ≤ ``group`` whose matches all lie within ``threshold``) for the reference blocks of the (H, W)
    ``guide``. The distance is the mean squared difference of two blocks."""
    height, width = guide.shape
    grid_h, grid_w = height - BLOCK + 1, width - BLOCK + 1
    rows, cols = _reference_positions(height), _reference_positions(width)
    offsets = torch.arange(-radius, radius + 1)
    span = 2 * radius + 1
    padded = F.pad(guide[None, None], [radius] * 4)[0, 0]
    distance = torch.empty(len(rows), len(cols), span, span)
    for i, dy in enumerate(offsets.tolist()):
        # (span, H, W), every dx at once, written contiguous: the running sums along W are 3x faster on it
        strip = padded[radius + dy:radius + dy + height].unfold(1, width, 1).permute(1, 0, 2)
        squared = torch.sub(strip, guide, out=torch.empty(span, height, width)).square_()
        # box sums at the reference positions only (the squares are ≤ 3: float32 is exact enough)
        box = _block_sums(_block_sums(squared, 2), 1)  # (span, rows, columns)
        distance[:, :, i] = box.permute(1, 2, 0) / BLOCK**2
    # a candidate reaching past the image is no match (its padded zeros would read as a dark block)
    cand_y = rows[:, None, None, None] + offsets[None, None, :, None]
    cand_x = cols[None, :, None, None] + offsets[None, None, None, :]
    outside = (cand_y < 0) | (cand_y >= grid_h) | (cand_x < 0) | (cand_x >= grid_w)
    distance = distance.masked_fill_(outside, math.inf).reshape(len(rows) * len(cols), span * span)
    distance[:, span * span // 2] = -1.0  # the reference itself comes first (flat guides tie at 0)
    nearest = distance.topk(group, dim=1, largest=False)
    within = (nearest.values <= threshold).sum(1)
    size = torch.pow(2, torch.floor(torch.log2(within.clamp_min(1).double()))).long()
    ref_y = rows.repeat_interleave(len(cols))[:, None]
    ref_x = cols.repeat(len(rows))[:, None]
    return (ref_y + offsets[nearest.indices // span]) * grid_w + ref_x + offsets[nearest.indices % span], size


def _filter_groups(noisy: Tensor, guide: Tensor | None, variance: float, basis: Tensor) -> tuple[Tensor, Tensor]:
    """(filtered coefficients, (C, 1, N, 1) each group's aggregation weight) of (C, K, N, 64) groups of block DCT
    coefficients, the K blocks of a group along dimension 1 (so the transform along the groups is one large matrix
    product, not N small ones): hard thresholding when ``guide`` is None, else the empirical Wiener filter with the
    guide's."""
    channels, size, count, _ = noisy.shape

    def along_groups(matrix: Tensor, x: Tensor) -> Tensor:
        return (matrix @ x.reshape(channels, size, -1)).reshape(channels, size, count, -1)

    coef = along_groups(basis, noisy)
    if guide is None:
        shrink = coef.abs() > LAMBDA_3D * math.sqrt(variance)
        shrink[:, 0, :, 0] = True  # the group's mean is never thresholded away
        shrink = shrink.to(coef.dtype)
        weight = shrink.sum((1, 3), keepdim=True).reciprocal()
    else:
        power = along_groups(basis, guide).square_()
        shrink = power / (power + variance)
        weight = shrink.square().sum((1, 3), keepdim=True).clamp_min(1e-6).reciprocal()
    return along_groups(basis.T, coef.mul_(shrink)), weight


def _block_coefficients(planes: Tensor, forward: Tensor) -> Tensor:
    """(C, (H − 7)(W − 7), 64) the coefficients in the (64, 64) block transform ``forward`` of every 8x8 block of
    (C, H, W) planes, blocks in raster order of their top-left corners."""
    return F.unfold(planes.unsqueeze(1), BLOCK).transpose(1, 2) @ forward.T


def _collaborative_pass(noisy_coef: Tensor, guide: Tensor, variance: float, group: int, threshold: float,
                        shape: tuple[int, int], transform: tuple[Tensor, Tensor], wiener: bool) -> Tensor:
    """One step (module docstring): (C, H, W) the estimate from the noisy blocks' coefficients ``noisy_coef``
    (:func:`_block_coefficients`) of (H, W) planes in the block ``transform`` (forward, inverse), with blocks matched
    on ``guide``'s luma; the hard-thresholding step, or with ``wiener`` the Wiener step with ``guide`` as the
    pilot."""
    forward, inverse = transform
    channels = noisy_coef.shape[0]
    height, width = shape
    starts, sizes = match_blocks(guide[0], group, threshold, RADIUS)
    guide_coef = _block_coefficients(guide, forward) if wiener else None
    numerator = torch.zeros_like(noisy_coef)
    weights = torch.zeros(channels, noisy_coef.shape[1])
    for size in sizes.unique().tolist():
        basis = group_basis(size)
        for part in (sizes == size).nonzero().flatten().split(max(1, CHUNK // size)):
            index = starts[part, :size].T.reshape(-1)  # a group's k-th blocks together (_filter_groups)
            grouped = (channels, size, len(part), BLOCK * BLOCK)
            blocks, weight = _filter_groups(noisy_coef[:, index].reshape(grouped),
                                            None if guide_coef is None else guide_coef[:, index].reshape(grouped),
                                            variance, basis)
            numerator.index_add_(1, index, (blocks * weight).reshape(channels, -1, BLOCK * BLOCK))
            weights.index_add_(1, index, weight.expand(channels, size, len(part), 1).reshape(channels, -1))
    # every block back as windowed pixels, summed where blocks overlap, over the windowed weights' sum; the
    # pixels come out of the inverse transform as (C, 64, blocks), contiguous planes for the overlap-add
    window = _kaiser()
    pixels = _overlap_add((inverse * window[:, None]) @ numerator.transpose(1, 2), shape)
    grid = (channels, 1, height - BLOCK + 1, width - BLOCK + 1)
    line = _kaiser_line()  # the window is separable: two 1-D transposed convolutions in place of one 8x8
    cover = F.conv_transpose2d(F.conv_transpose2d(weights.reshape(grid), line.reshape(1, 1, 1, BLOCK)),
                               line.reshape(1, 1, BLOCK, 1))[:, 0]
    return pixels / cover


def _overlap_add(planes: Tensor, shape: tuple[int, int]) -> Tensor:
    """(C, H, W): the (C, 64, (H − 7)(W − 7)) pixels of blocks, one at every top-left corner, summed where they
    overlap: 64 shifted adds of contiguous planes."""
    channels = planes.shape[0]
    height, width = shape
    grid_h, grid_w = height - BLOCK + 1, width - BLOCK + 1
    grid = planes.reshape(channels, BLOCK, BLOCK, grid_h, grid_w)
    out = planes.new_zeros(channels, height, width)
    for i in range(BLOCK):
        for j in range(BLOCK):
            out[:, i:i + grid_h, j:j + grid_w] += grid[:, i, j]
    return out


def collaborative_estimate(y: Tensor, variance: float) -> Tensor:
    """BM3D's two steps (module docstring) on one noisy (3, H, W) image with white noise of ``variance`` per value
    ([0, 1] scale). A new float32 tensor; ``y`` is not changed. Images smaller than a block come back unchanged.
    Images taller than ``STRIP + 2 HALO`` rows are filtered in strips of ``STRIP`` rows with ``HALO`` rows of
    context each side: a 448² block of the warm start's loop raised the peak RSS by 3.7 kB a pixel filtered whole,
    over the memory planner's 3 kB (flowprior.batch.memory.peak), and by 2.6 kB in strips (blocks filtered
    :data:`CHUNK` at a time)."""
    if y.dim() != 3 or y.shape[0] != 3:
        raise ValueError(f"the collaborative filter takes one (3, H, W) image, not {tuple(y.shape)}")
    if min(y.shape[-2:]) < BLOCK or variance <= 0:
        return y.float().clone()
    planes = _to_opponent(y[None].float())[0]
    height = planes.shape[1]
    if height <= STRIP + 2 * HALO:
        return _finite_or(_from_opponent(_both_steps(planes, variance)[None])[0], y)
    out = torch.empty_like(planes)
    for top in range(0, height, STRIP):
        bottom = min(height, top + STRIP)
        first, last = max(0, top - HALO), min(height, bottom + HALO)
        out[:, top:bottom] = _both_steps(planes[:, first:last], variance)[:, top - first:bottom - first]
    return _finite_or(_from_opponent(out[None])[0], y)


def _both_steps(planes: Tensor, variance: float) -> Tensor:
    """The hard-thresholding step, then the Wiener step it pilots, on (3, H, W) opponent planes."""
    shape = (planes.shape[1], planes.shape[2])
    wavelet, dct = bior15_block(), (dct_block(), dct_block().T)  # flowprior.warmstart.block_transforms
    basic = _collaborative_pass(_block_coefficients(planes, wavelet[0]), planes, variance, GROUP_HT, MATCH_HT, shape,
                                wavelet, wiener=False)
    return _collaborative_pass(_block_coefficients(planes, dct[0]), basic, variance, GROUP_WIENER, MATCH_WIENER,
                               shape, dct, wiener=True)


def _finite_or(estimate: Tensor, y: Tensor) -> Tensor:
    """``estimate`` where finite, else the input (none are expected)."""
    return torch.where(torch.isfinite(estimate), estimate, y.float())


def collaborative_blend(x0: Tensor, y: Tensor, variance: Tensor, divergence_x0: Tensor, values: Tensor,
                        where: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(``x0 + β (C − x0)``, β): the warm start ``x0`` of noisy ``y`` (B, 3, H, W) moved towards the collaborative
    estimate ``C`` by the weight SURE says is best, per image, on the 0/1 ``values`` (those away from the bounds,
    :func:`~flowprior.warmstart.sure.away_from_the_bounds`); ``divergence_x0`` is ``x0``'s divergence on them and
    ``variance`` the (B,) or scalar noise variance per value. Images outside the (B,) bool ``where`` are not filtered
    (their β is 0).

    C's divergence is probed with a step of :data:`PROBE_FRACTION` noise stds, the blocks matched again at the moved
    input. C depends on the noise through its matches too: blocks are chosen because they look like the reference,
    noise included, so they carry noise like the reference's. With the matches held fixed (a step of 10⁻³ σ) SURE
    misses that part and β came out too large on 7 of 16 validation crops at σ 25 (−0.58 to −1.05 dB on four of
    them); a step of 0.15 σ sees the matches change and reads it (docs/benchmarks.md "Collaborative filtering")."""
    direction = torch.randn(y.shape, generator=torch.Generator().manual_seed(PROBE_SEED)).to(y.device)
    per_image = variance.to(torch.float64).reshape(-1).expand(y.shape[0])
    keep = torch.ones(y.shape[0], dtype=torch.bool) if where is None else where.reshape(-1).expand(y.shape[0])
    estimates, divergences = [], []
    for image, start, probe_direction, mask, v, kept, d0 in zip(y.float(), x0, direction, values, per_image.tolist(),
                                                               keep.tolist(), divergence_x0):
        if not kept:  # x0 itself: SURE's β falls back to 0
            estimates.append(start.float())
            divergences.append(d0)
            continue
        at_y = collaborative_estimate(image, v)
        step = PROBE_FRACTION * math.sqrt(max(v, 0.0))
        moved = collaborative_estimate(image + step * probe_direction, v)
        estimates.append(at_y)
        divergences.append(divergence_along(probe_direction[None], at_y[None], moved[None], mask[None], step)[0]
                           if step > 0 else mask.sum())
    estimate = torch.stack(estimates).to(x0.dtype)
    beta = sure_weight_between(y, x0, estimate, divergence_x0, torch.stack(divergences), per_image, fallback=0.0,
                               values=values)
    return x0 + beta.to(x0.dtype).reshape(-1, 1, 1, 1) * (estimate - x0), beta
