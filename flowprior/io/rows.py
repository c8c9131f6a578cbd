"""Images held as rows: computed on demand (:class:`LazyRows`) or stored block by block (:class:`RowStore`), so a
large output never needs its float tensor, nor (with a file) its samples resident."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np


class LazyRows:
    """(H, W, C) samples computed a block of rows at a time: ``rows[y0:y1]`` calls ``read(y0, y1)``."""

    def __init__(self, shape: tuple[int, int, int], dtype, read: Callable[[int, int], np.ndarray]):
        self.shape, self.dtype, self.read = tuple(shape), np.dtype(dtype), read

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop, _ = rows.indices(self.shape[0])
        return self.read(start, stop)


class RowStore:
    """An (H, W, C) uint array filled and read in blocks of rows: in memory, or in a file.

    With ``file``, the samples live in that file (created, and deleted by :meth:`close`) and each access maps only
    its block of rows (``np.memmap`` with an offset), so the image does not stay resident: for an output that
    would not fit the memory budget. Use ``store[y0:y1] = block`` and ``store[y0:y1]``.
    """

    def __init__(self, shape: tuple[int, int, int], dtype, file: str | os.PathLike | None = None):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.file = None if file is None else Path(file)
        self.array = None
        if self.file is None:
            self.array = np.empty(self.shape, self.dtype)
        else:
            with open(self.file, "xb") as handle:
                handle.truncate(int(np.prod(self.shape)) * self.dtype.itemsize)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def _map(self, rows: slice, mode: str) -> np.memmap | None:
        start, stop, _ = rows.indices(self.shape[0])
        if stop <= start:
            return None
        row_bytes = self.shape[1] * self.shape[2] * self.dtype.itemsize
        return np.memmap(self.file, self.dtype, mode, offset=start * row_bytes, shape=(stop - start, *self.shape[1:]))

    def __getitem__(self, rows: slice) -> np.ndarray:
        if self.array is not None:
            return self.array[rows]
        view = self._map(rows, "r")
        return np.empty((0, *self.shape[1:]), self.dtype) if view is None else np.array(view)

    def __setitem__(self, rows: slice, block: np.ndarray) -> None:
        if self.array is not None:
            self.array[rows] = block
            return
        view = self._map(rows, "r+")
        if view is not None:
            view[...] = block
            view.flush()
            del view  # unmapped: written rows do not stay in this process's resident memory

    def close(self) -> None:
        """Free the samples (delete the file)."""
        self.array = None
        if self.file is not None:
            self.file.unlink(missing_ok=True)
