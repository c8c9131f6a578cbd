"""Refine a warm start of a noisy image by an empirical Wiener filter in sliding 8x8 DCT blocks (the pilot's spectrum).

For ``y = x + n`` with white Gaussian noise of variance ``v``, the linear filter with the least error on one
orthonormal transform coefficient ``Y`` of the clean value ``X`` is ``w Y`` with ``w = X² / (X² + v)``. ``X`` is
unknown, but a good estimate ``P`` of it (the *pilot*: here the learned warm start) gives ``w = P² / (P² + g v)``:
BM3D's second step (Dabov et al. 2007) without its grouping of similar blocks. It keeps what the pilot says is
signal at the noisy image's own amplitude, where a network trained on σ 0–50 smooths fine texture a little,
and it removes what the pilot says is noise.

The transform is an orthonormal opponent colour transform (white noise stays white, with the same variance) and a
2-D DCT on every 8x8 window (stride 1, the image reflected by 7 pixels at its borders); each window's filtered
block goes back with the weight ``1 / Σ w²`` (a block the filter keeps nearly unchanged carries more noise, so it
counts less) and every pixel is the weighted mean of the 64 windows that cover it.

How much of it to take differs from photo to photo: on sharp, textured photos the network's smoothing costs more
than the Wiener filter's leftover noise, on smooth ones (underwater scenes, wallpapers) the reverse. So the warm start
moves towards the Wiener estimate by the weight β that minimizes Stein's unbiased risk estimate
(:func:`wiener_blend`, the same estimate that weighs the network against its input, flowprior.warmstart.sure).
SURE assumes Gaussian noise around the clean value, but a stored image clips its noise at 0 and 1: near the bounds
the clipped noise reads as an error the estimate does not have (at σ 25, SURE put the warm start's squared error on
a crop with dark areas at −303 against a true +72), and β came out far too large at strong noise. So β is chosen on
the values whose estimate lies more than :data:`~flowprior.warmstart.sure.SURE_MARGIN` noise stds inside [0, 1]
(:func:`~flowprior.warmstart.sure.away_from_the_bounds`).

Chosen on validation crops (256², the training pool's held-out photos, 16 spread evenly over the photos and 16 drawn
by area, docs/benchmarks.md "Wiener refinement"), the step against the warm start: +0.67 / +0.33 dB at σ 2,
+0.44 / +0.12 at σ 5, +0.33 / +0.02 at σ 10, +0.23 / −0.02 at σ 15, +0.07 / −0.04 at σ 25 (before the margin:
−0.04 / −0.40 at σ 15 and −0.43 / −0.84 at σ 25). The recipe sets the largest σ it runs at (``init_wiener``, 25 in the
default recipe: the training range of the warm start goes to 50, and above 25 it was not measured). Since session 15
the default recipe runs the collaborative step (:mod:`flowprior.warmstart.collaborative`) in its place, which gained
more on the same crops; this step runs where that one is off. ``g`` =
:data:`GAIN` was chosen on the same crops (1, 1.5 and 2 tried).

Every output pixel depends on the input and the pilot within 7 pixels, so a warm start computed block by block
with a halo (``flowprior.warm_bands``) keeps the whole-image values.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from flowprior.warmstart.sure import (
    PROBE_STEP,
    Probe,
    away_from_the_bounds,
    divergence_along,
    shrunk_divergence,
    sure_weight_between,
)

#: DCT block side
BLOCK = 8
#: ``g`` in ``w = P² / (P² + g v)``: > 1 shrinks a little harder than the pilot's own estimate says, because the
#: pilot's coefficients carry errors of their own (chosen on validation crops, module docstring)
GAIN = 1.5
#: rows filtered at once (plus 7 rows of context each side): bounds the memory (~20 kB a column of a strip) and keeps
#: it in cache; 64 was the fastest of 16-128 on a 256² image (0.15-0.3 s a filter on 2 threads, 2x the whole image's)
STRIP = 64


def _dct_matrix(n: int) -> Tensor:
    """(n, n) orthonormal DCT-II: row ``k`` is the ``k``-th basis vector."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    basis = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    basis[0] /= math.sqrt(2.0)
    return basis


@functools.lru_cache(maxsize=1)
def _dct_filters(n: int = BLOCK) -> tuple[Tensor, Tensor]:
    """The 2-D DCT as two 1-D convolutions (correlations): (n, 1, n, 1) over rows giving ``n`` channels, then
    (n², 1, 1, n) over columns in ``n`` groups, so channel ``u n + v`` holds coefficient (u, v) of every window. The
    separable form costs 2n multiply-adds a coefficient instead of n²; the transposed convolutions with the same
    weights put the blocks back."""
    d = _dct_matrix(n)
    return d.reshape(n, 1, n, 1), d.repeat(n, 1).reshape(n * n, 1, 1, n)


def _window_dct(planes: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """(N, n², H − n + 1, W − n + 1) the DCT coefficients of every n x n window of (N, 1, H, W) planes. The column
    pass runs as one convolution over the row pass's n channels stacked as planes: 1.5x faster than the grouped
    convolution it equals."""
    across = F.conv2d(planes, rows)
    n, c, h, w = across.shape
    return F.conv2d(across.reshape(n * c, 1, h, w), cols[:BLOCK]).reshape(n, c * BLOCK, h, w - BLOCK + 1)


def _fold_blocks(coef: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """The sum over windows of each window's inverse DCT, put back where the window lies (the adjoint of
    :func:`_window_dct`, its inverse on each window: the DCT is orthonormal)."""
    return F.conv_transpose2d(F.conv_transpose2d(coef, cols, groups=BLOCK), rows)


#: orthonormal opponent colour transform (rows): luma, red-blue, green-magenta
OPPONENT = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, -1.0], [1.0, -2.0, 1.0]], dtype=torch.float64)
OPPONENT = OPPONENT / OPPONENT.norm(dim=1, keepdim=True)


def _to_opponent(x: Tensor) -> Tensor:
    return torch.einsum("oc,bchw->bohw", OPPONENT.to(x), x)


def _from_opponent(x: Tensor) -> Tensor:
    return torch.einsum("oc,bohw->bchw", OPPONENT.to(x), x)


def _filter_planes(noisy: Tensor, pilot: Tensor, variance: Tensor, gain: float) -> Tensor:
    """The Wiener estimate of (N, 1, H + 14, W + 14) padded planes, cropped to their (N, 1, H, W) centre;
    ``variance``: (N,) noise variance per value."""
    rows, cols = (f.to(noisy) for f in _dct_filters())
    noisy_coef = _window_dct(noisy, rows, cols)  # (N, 64, H + 7, W + 7): every window's coefficients
    pilot_power = _window_dct(pilot, rows, cols).square_()
    # w = P²/(P² + g v); the tiny ε keeps w = 1 where there is no noise and the pilot's coefficient is 0
    weight = (pilot_power + 1e-20) / (pilot_power + (gain * variance.reshape(-1, 1, 1, 1) + 1e-20))
    # 1/Σw²: the weight of a window's block in the average; bounded, as the DC weight of any pilot not black is near 1
    block_weight = weight.square().sum(1, keepdim=True).clamp_min(1e-6).reciprocal()
    noisy_coef.mul_(weight).mul_(block_weight)
    numerator = _fold_blocks(noisy_coef, rows, cols)
    pad = BLOCK - 1
    # Σ of the weights of the windows over each pixel: a box sum (6x faster than the transposed convolution it equals)
    denominator = F.avg_pool2d(F.pad(block_weight, [pad] * 4), BLOCK, stride=1) * BLOCK**2
    return (numerator / denominator)[..., pad:-pad, pad:-pad]


def wiener_refine(y: Tensor, pilot: Tensor, variance: Tensor, gain: float = GAIN) -> Tensor:
    """The empirical Wiener estimate of the clean image from noisy ``y`` (B, 3, H, W) with white noise of
    ``variance`` ((B,) or scalar, per value, [0, 1] scale) and the ``pilot`` estimate (module docstring).
    A new float32 tensor the shape of ``y``; inputs are not changed. Non-finite values in the result (none are
    expected) fall back to the pilot."""
    if y.shape != pilot.shape or y.shape[1] != 3:
        raise ValueError(f"the Wiener step takes matching (B, 3, H, W) images, not {tuple(y.shape)} and "
                         f"{tuple(pilot.shape)}")
    b, _, h, w = y.shape
    pad = BLOCK - 1
    mode = "reflect" if min(h, w) > pad else "replicate"
    planes = [F.pad(_to_opponent(t.float()), [pad] * 4, mode=mode).reshape(b * 3, 1, h + 2 * pad, w + 2 * pad)
              for t in (y, pilot)]
    per_plane = torch.as_tensor(variance, dtype=torch.float32).reshape(-1).expand(b).repeat_interleave(3)
    out = torch.empty(b * 3, 1, h, w, dtype=torch.float32, device=y.device)
    for top in range(0, h, STRIP):
        bottom = min(h, top + STRIP)
        window = slice(top, bottom + 2 * pad)
        out[..., top:bottom, :] = _filter_planes(planes[0][..., window, :], planes[1][..., window, :],
                                                 per_plane.to(y.device), gain)
    refined = _from_opponent(out.reshape(b, 3, h, w))
    return torch.where(torch.isfinite(refined), refined, pilot.float())


def wiener_blend(x0: Tensor, y: Tensor, variance: Tensor, probed: Probe, alpha: Tensor) -> tuple[Tensor, Tensor]:
    """(``x0 + β* (W − x0)``, β*): the warm start ``x0`` moved towards its Wiener estimate ``W = wiener_refine(y,
    x0)`` by the weight SURE says is best (:func:`~flowprior.warmstart.sure.sure_weight_between`), per image.

    SURE needs the divergence of both. ``x0`` is the SURE blend ``y + α (f(y) − y)`` of the network's ensemble
    ``f``, whose divergence is read off the network's single pass, ``probed`` (flowprior.warmstart.sure). ``W``
    depends on ``y`` directly and through its pilot; it is probed along the same direction with the pilot moved as
    the single pass moved, so it costs a second Wiener filter and no network pass."""
    step = PROBE_STEP * probed.direction
    a = alpha.to(x0.dtype).reshape(-1, 1, 1, 1)
    moved_pilot = x0 + a * (probed.moved - probed.at_y) + (1 - a) * step
    at_y = wiener_refine(y, x0, variance)
    moved = wiener_refine(y + step, moved_pilot, variance)
    inside = away_from_the_bounds(x0, variance)
    divergence_x0 = shrunk_divergence(alpha, probed, inside)
    divergence_w = divergence_along(probed.direction, at_y, moved, inside)
    beta = sure_weight_between(y, x0, at_y, divergence_x0, divergence_w, variance, fallback=0.0, values=inside)
    return x0 + beta.to(x0.dtype).reshape(-1, 1, 1, 1) * (at_y.to(x0.dtype) - x0), beta
