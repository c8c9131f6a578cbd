"""An image the restore reads a band of rows at a time (:class:`ImageRows`), and a reader that keeps its last band."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from flowprior.tiling import RowReader


@dataclass
class ImageRows:
    """A batch of images that the solver reads a band of rows at a time (:func:`restore_rows`).

    ``read(b, y0, y1)`` -> (1, C, y1 - y0, W): rows of image ``b`` in [0, 1] (e.g. decoded from a file's samples
    on demand). :meth:`of` wraps a tensor.
    """

    batch: int
    channels: int
    height: int
    width: int
    read: RowReader

    @classmethod
    def of(cls, y: Tensor) -> ImageRows:
        return cls(y.shape[0], y.shape[1], y.shape[2], y.shape[3], lambda b, y0, y1: y[b : b + 1, :, y0:y1])


def remember_last(read: RowReader) -> RowReader:
    """``read`` that returns its last result again for the same rows (the observation and the warm start of a
    chunk, and successive chunks in the same tile rows, read the same band)."""
    last: dict[str, Any] = {}

    def cached(b: int, y0: int, y1: int) -> Tensor:
        if last.get("key") != (b, y0, y1):
            last.update(key=(b, y0, y1), rows=read(b, y0, y1))
        return last["rows"]

    return cached
