"""The input seen on the output's grid, for a file restore whose output is larger than its input (a ``downsample``
restored by super-resolution): what the output stages compare the restoration with (``--strength``, kept chroma,
the alpha channel, the mask, the ``--compare`` image) is the input upsampled onto the output's rows."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from degradations.functional.resize import upsample
from flowprior.pipeline.operator import clean_size

#: input rows read above and below a band: bicubic upsampling reaches two input pixels out, so a band upsampled
#: with this margin has the rows of the whole image's upsampling
MARGIN = 2


def output_size(state) -> tuple[int, int]:
    """(height, width) of a file restore's output: the clean grid of its recipe's degradation."""
    return clean_size(state.recipe, *state.image.size)


def scale_factor(state) -> int:
    """How many times larger the output is than the input (1 unless the degradation downsamples)."""
    return output_size(state)[0] // state.image.size[0]


def on_output_grid(rows: Callable[[int, int], Tensor | None], factor: int, height: int
                   ) -> Callable[[int, int], Tensor | None]:
    """``rows(y0, y1)`` of a ``height``-row input -> the same reader on the ``factor`` x larger output grid (bicubic,
    clamped to [0, 1]: the pixels a viewer would show for the input at the output's size). Identity for 1."""
    if factor == 1:
        return rows

    def read(y0: int, y1: int) -> Tensor | None:
        low, high = max(0, y0 // factor - MARGIN), min(height, -(-y1 // factor) + MARGIN)
        band = rows(low, high)
        if band is None:  # no alpha
            return None
        return upsample(band.float(), factor)[..., y0 - low * factor : y1 - low * factor, :].clamp(0, 1)

    return read


def mask_on_output_grid(mask: Tensor | None, factor: int) -> Tensor | None:
    """A (1, 1, h, w) mask of the input -> (1, 1, h·f, w·f): each input pixel's flag on the output pixels it
    covers."""
    if mask is None or factor == 1:
        return mask
    return mask.repeat_interleave(factor, -2).repeat_interleave(factor, -1)


def input_rows(state) -> Callable[[int, int], Tensor]:
    """The input's rows on the output's grid (``--compare``'s left half)."""
    return on_output_grid(state.image.rows, scale_factor(state), state.image.size[0])
