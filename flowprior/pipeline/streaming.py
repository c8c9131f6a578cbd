"""Whether a restore streams: the one decision that the memory planner (before a file is decoded) and the restore
itself (:func:`flowprior.pipeline.warm_start.warm_start`) both ask, :func:`stream_mode`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from degradations import parse
from flowprior.warm_bands import can_band

#: the size the planner samples an operator's params at, to see which of them are maps the size of the image
PROBE_SIZE = (16, 16)


@dataclass(frozen=True)
class Streaming:
    """How :func:`~flowprior.pipeline.rows.restore_rows` reads an image."""

    rows: bool  # the observation and the warm start exist a band of tile rows at a time
    banded: bool  # the learned warm start runs block row by block row (flowprior.warm_bands)


def stream_mode(init: str, op, params: dict[str, Tensor], height: int, width: int, batch: int = 1,
                sampled_at: tuple[int, int] | None = None) -> Streaming:
    """How a ``height`` x ``width`` image (``batch`` of them) restored with warm start ``init`` under ``op`` is read.

    It streams when the warm start can be computed a band at a time: the identity initializer (pixel by pixel) or
    a deterministic learned one on an image large enough to run in blocks (:func:`flowprior.warm_bands.can_band`,
    one image), and only without holes (filling them looks at the whole image), without a parameter the size of
    the image, without a realization to estimate (a haze depth is estimated from the whole image), and without a
    size change (a downsampling's warm start upsamples the whole observation; bands of the clean grid would need
    bands of the input with a margin that the band readers do not take): such an image is restored whole.

    Args:
        params: the operator's params, sampled for an image of ``sampled_at`` (default: this image's size).
    """
    size = sampled_at or (height, width)
    per_band = op.observed_mask(params) is None and not _image_sized(params, size) and not op.realization \
        and op.input_size(height, width) == (height, width)
    banded = per_band and batch == 1 and can_band(init, height, width)
    return Streaming(rows=per_band and (init == "identity" or banded), banded=banded)


def streams(recipe, mask: bool, height: int, width: int) -> bool:
    """The memory planner's question, from the recipe and the file's header alone: :func:`stream_mode` on the
    recipe's operator with params probed at :data:`PROBE_SIZE` (``mask``: a mask file is given, so holes)."""
    if mask:
        return False
    try:
        op = parse(recipe.degradation, recipe.params)
        probe = op.sample_params((1, 3, *PROBE_SIZE), torch.Generator().manual_seed(0))
    except Exception:  # noqa: BLE001 - a mask file operator, a bad spec: not streamed (the solve reports errors)
        return False
    return stream_mode(recipe.init, op, probe, height, width, sampled_at=PROBE_SIZE).rows


def _image_sized(params: dict[str, Tensor], size: tuple[int, int]) -> bool:
    """Whether an operator parameter is a map the size of the image (a mask, a haze depth, an overlay)."""
    return any(v.dim() == 4 and tuple(v.shape[-2:]) == tuple(size) for v in params.values())
