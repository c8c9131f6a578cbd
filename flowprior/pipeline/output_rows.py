"""Where restored rows go in a file restore: through colour (chroma kept or restored), strength and quantization
straight into the output samples (:class:`flowprior.io.RowStore`, in a file when the memory plan says so), and for
``--compare`` of a 16-bit output into its 8-bit review samples too; and the rows the solver reads (the luminance
only when chroma is kept)."""

from __future__ import annotations

import numpy as np
import torch

from flowprior.io import RowStore, temporary_path, to_hwc
from flowprior.pipeline.blend import RowSink
from flowprior.pipeline.clean_grid import mask_on_output_grid, on_output_grid, output_size, scale_factor
from flowprior.pipeline.image_rows import ImageRows
from flowprior.pipeline.paths import compare_path
from flowprior.pipeline.request import RestoreRequest, RestoreState
from flowprior.review import blend_toward_input
from flowprior.tone import recombine_chroma, rgb_to_ycbcr


def open_output_rows(request: RestoreRequest, state: RestoreState) -> None:
    """The output's bit depth and alpha, and its samples (+ the review image's) opened as row stores."""
    image, fmt, (height, width) = state.image, state.fmt, output_size(state)  # larger for a super-resolution
    state.bit_depth = image.bit_depth if image.bit_depth in fmt.bit_depths else 8
    state.keep_alpha = image.has_alpha and fmt.alpha
    on_disk = state.memory is not None and state.memory["output"] == "disk"
    state.store = RowStore((height, width, image.channels + state.keep_alpha),
                           np.uint16 if state.bit_depth == 16 else np.uint8,
                           temporary_path(request.target) if on_disk else None)
    state.stores.append(state.store)
    state.review_rows = state.store if request.compare and state.bit_depth == 8 else None
    if request.compare and state.bit_depth != 8:
        state.review_rows = RowStore((height, width, image.channels), np.uint8,
                                     temporary_path(compare_path(request.target)) if on_disk else None)
        state.stores.append(state.review_rows)


def solver_input(state: RestoreState) -> ImageRows:
    """The rows the solver restores: the image's, or its luminance (Y of BT.601 YCbCr) when chroma is kept."""
    image, keep = state.image, state.keep_chroma
    height, width = image.size

    def rows(b: int, y0: int, y1: int) -> torch.Tensor:
        band = image.rows(y0, y1)
        return rgb_to_ycbcr(band)[:, :1].float() if keep else band

    return ImageRows(1, 1 if keep else image.channels, height, width, rows)


def output_sink(state: RestoreState, store: RowStore | None = None) -> RowSink:
    """``emit`` for :func:`~flowprior.pipeline.rows.restore_rows`: restored rows -> colour -> strength -> samples.

    ``store``: samples of the output's shape to fill instead of the output's own (a posterior sample); the review
    image follows the output's only."""
    image, factor = state.image, scale_factor(state)
    store, review = (state.store, state.review_rows) if store is None else (store, None)
    # what the restoration is compared with, on its own grid (a super-resolution's input is smaller)
    input_rows = on_output_grid(image.rows, factor, image.size[0])
    alpha_rows = on_output_grid(image.alpha_rows, factor, image.size[0])
    mask = mask_on_output_grid(state.mask_tensor, factor)

    def emit(b: int, y0: int, y1: int, rows: torch.Tensor) -> None:
        observed = input_rows(y0, y1)
        part = None if mask is None else mask[..., y0:y1, :]
        if state.keep_chroma:
            rows = recombine_chroma(rows, observed, part, state.toning)
        rows = blend_toward_input(rows, observed, state.strength, part)
        store[y0:y1] = to_hwc(rows, alpha_rows(y0, y1) if state.keep_alpha else None, state.bit_depth)
        if review is not None and review is not store:
            review[y0:y1] = to_hwc(rows, None, 8)

    return emit
