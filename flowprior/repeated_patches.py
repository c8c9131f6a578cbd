"""Training patches with repeated structure: a share of a batch replaced by periodic tilings of a small tile cut
from the same patch.

Why: on the validation crops, the noise gap to BM3D sits on self-similar, man-made scenes (a tunnel's ribs, rows of
fins, a wall of hatches: BM3D leads there by 0.8–3.4 dB at σ 25) and the training pool (landscapes, underwater
scenes, animals) holds few of them (docs/benchmarks.md "Where the noise gap to BM3D lives"). A tiling with a period
of 5–24 pixels puts several exact repeats inside the network's field of view, so it can learn to average them.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: the periods drawn (pixels, each axis on its own), inclusive
PERIODS = (5, 24)


def tile_periodically(patch: Tensor, period_y: int, period_x: int, top: int, left: int,
                      phase_y: int, phase_x: int) -> Tensor:
    """(C, H, W): the tile ``patch[:, top:top+period_y, left:left+period_x]`` repeated over the patch's size,
    starting ``phase`` pixels into the tile."""
    _, height, width = patch.shape
    tile = patch[:, top:top + period_y, left:left + period_x]
    rows = (height + phase_y) // period_y + 1
    cols = (width + phase_x) // period_x + 1
    return tile.repeat(1, rows, cols)[:, phase_y:phase_y + height, phase_x:phase_x + width]


def repeat_some(hq: Tensor, share: float, generator: torch.Generator) -> Tensor:
    """``hq`` (B, C, H, W) with each patch replaced, with probability ``share``, by a periodic tiling of a tile cut
    from it (period, tile position and phase drawn from ``generator``). A new tensor; ``hq`` is not changed."""
    if share <= 0:
        return hq
    out = hq.clone()
    height, width = hq.shape[-2:]
    low, high = PERIODS[0], min(PERIODS[1], height, width)
    chosen = torch.rand(hq.shape[0], generator=generator) < share
    for i in torch.nonzero(chosen).flatten().tolist():
        py, px = (int(torch.randint(low, high + 1, (1,), generator=generator)) for _ in range(2))
        top = int(torch.randint(0, height - py + 1, (1,), generator=generator))
        left = int(torch.randint(0, width - px + 1, (1,), generator=generator))
        phase_y = int(torch.randint(0, py, (1,), generator=generator))
        phase_x = int(torch.randint(0, px, (1,), generator=generator))
        out[i] = tile_periodically(hq[i], py, px, top, left, phase_y, phase_x)
    return out
