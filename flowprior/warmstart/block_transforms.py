"""The transforms of the collaborative filter (flowprior.warmstart.collaborative): along a group of blocks, and on
each 8x8 block.

The hard-thresholding step transforms blocks with the biorthogonal 1.5 wavelet, as BM3D's authors do for that step
(their Wiener step keeps the DCT): its basis blocks are short and local, so an edge or a texture's step costs few
kept coefficients, where the DCT spreads it over many. On 16 validation crops at σ 25 the filter alone went 32.55 →
32.64 dB with it (basic estimate 31.98 → 32.08), the restore +0.02 dB at σ 25 and σ 5 (docs/benchmarks.md
"session 17"). The Wiener step's shrinkage is smooth, so the DCT's better energy compaction on smooth content wins
there.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from flowprior.warmstart.wiener import _dct_matrix

#: block side
BLOCK = 8
#: bior1.5 analysis filters: the low-pass is the spline's (5 vanishing moments on the synthesis side), the high-pass
#: the Haar difference (Cohen-Daubechies-Feauveau family, (1, 5) vanishing moments)
_BIOR15_LOW = [math.sqrt(2.0) / 256 * tap for tap in (3, -3, -22, 22, 128, 128, 22, -22, -3, 3)]
#: the low-pass taps' phase: output ``i`` reads input ``2 i + 5 − j`` for tap ``j`` (centred on the pair 2i, 2i + 1)
_LOW_PHASE = 5


@functools.lru_cache(maxsize=8)
def group_basis(size: int) -> Tensor:
    """(size, size) orthonormal transform along a group: the Haar basis for powers of two (the paper's), row 0 the
    mean."""
    if size == 1:
        return torch.ones(1, 1)
    half = group_basis(size // 2)
    top = torch.kron(half, torch.tensor([[1.0, 1.0]]))
    bottom = torch.kron(torch.eye(size // 2), torch.tensor([[1.0, -1.0]]))
    return torch.cat([top, bottom]) / math.sqrt(2.0)


@functools.lru_cache(maxsize=1)
def dct_block() -> Tensor:
    """(64, 64) the orthonormal 2-D DCT of a flattened 8x8 block: row ``k`` is basis block ``k``."""
    d = _dct_matrix(BLOCK)
    return torch.kron(d, d).float()


def _periodic_level(n: int) -> tuple[Tensor, Tensor]:
    """(low, high), each (n / 2, n) float64: one level of the periodized bior1.5 analysis of ``n`` samples."""
    low, high = torch.zeros(n // 2, n, dtype=torch.float64), torch.zeros(n // 2, n, dtype=torch.float64)
    for i in range(n // 2):
        for j, tap in enumerate(_BIOR15_LOW):
            low[i, (2 * i + _LOW_PHASE - j) % n] += tap
        high[i, 2 * i], high[i, 2 * i + 1] = 1 / math.sqrt(2.0), -1 / math.sqrt(2.0)
    return low, high


def bior15_line(n: int = BLOCK) -> Tensor:
    """(n, n) float64 the full (log₂ n levels) periodized bior1.5 wavelet transform of ``n`` samples, coarsest first
    (row 0 the mean), each row scaled to unit norm so that a hard threshold in noise stds means the same on every
    row. Not orthogonal: its inverse is the synthesis side."""
    analysis = torch.eye(n, dtype=torch.float64)
    details = []
    while analysis.shape[0] > 1:
        low, high = _periodic_level(analysis.shape[0])
        details.insert(0, high @ analysis)
        analysis = low @ analysis
    rows = torch.cat([analysis, *details])
    return rows / rows.norm(dim=1, keepdim=True)


@functools.lru_cache(maxsize=1)
def bior15_block() -> tuple[Tensor, Tensor]:
    """(forward, inverse), each (64, 64) float32: the separable 2-D bior1.5 transform of a flattened 8x8 block
    (coefficients = forward @ pixels) and its inverse, computed in float64 (the transform is well conditioned, but
    not orthogonal)."""
    line = bior15_line()
    forward = torch.kron(line, line)
    return forward.float(), torch.linalg.inv(forward).float()
