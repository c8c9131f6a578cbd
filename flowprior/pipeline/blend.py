"""Stage *blend*: the solved tiles become image rows (:class:`flowprior.tiling.Blender`), each handed out once no
later tile touches it, clamped to [0, 1] and, for a gray image solved as RGB, averaged back to one channel."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from torch import Tensor

from flowprior import tiling
from flowprior.solver import SolveResult

#: ``emit(b, y0, y1, rows)``: rows (1, C, y1 - y0, W) float32 in [0, 1] of image ``b``, each image row once
RowSink = Callable[[int, int, int, Tensor], None]


def blend(chunks: Iterable[SolveResult], grid: tiling.TileGrid, gray: bool, emit: RowSink | None
          ) -> tuple[list[list[dict[str, float]]], int]:
    """Blend the solved chunks (in tile order) into rows for ``emit``; -> (each chunk's stage energies, rollbacks)."""

    def finish(b: int, y0: int, y1: int, rows: Tensor) -> None:
        rows = rows.clamp(0, 1)
        if emit is not None:
            emit(b, y0, y1, rows.mean(1, keepdim=True) if gray else rows)

    blender = tiling.Blender(grid, finish)
    energies, rollbacks = [], 0
    for result in chunks:
        blender.add(result.image)
        energies.append(result.stage_energies)
        rollbacks += result.rollbacks
    return energies, rollbacks
