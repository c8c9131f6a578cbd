"""Make a warm start consistent with the file it restores: a JPEG's quantization bins hold the original.

When JPEG is the whole degradation, every clean candidate must re-encode into the bins of the decoded input, so
the warm start's DCT coefficients are clipped into them (:func:`degradations.functional.jpeg_bins.project_to_bins`).
With noise or holes before the JPEG, the bins hold the noisy or holed image instead, so nothing is clipped.
"""

from __future__ import annotations

from torch import Tensor

from degradations import Degradation
from degradations.functional.jpeg import quantization_tables
from degradations.functional.jpeg_bins import project_to_bins
from flowprior.conditioning import members


def jpeg_tables(prefix: str, params: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """(B, 8, 8) luma and chroma tables of the JPEG member at ``prefix``: the file's own, or its quality's."""
    if f"{prefix}luma_table" in params:
        return params[f"{prefix}luma_table"].reshape(-1, 8, 8), params[f"{prefix}chroma_table"].reshape(-1, 8, 8)
    return quantization_tables(params[f"{prefix}quality"].reshape(-1))


def consistent_with_jpeg(x0: Tensor, y: Tensor, degradation: Degradation, params: dict[str, Tensor]) -> Tensor:
    """``x0`` clipped into the quantization bins of ``y`` when the degradation is JPEG alone; else ``x0``."""
    found = [(prefix, member) for prefix, member in members(degradation) if member.name != "identity"]
    if len(found) != 1 or found[0][1].name != "jpeg" or x0.shape != y.shape:
        return x0
    prefix, jpeg = found[0]
    luma, chroma = jpeg_tables(prefix, params)
    luma, chroma = luma.expand(x0.shape[0], -1, -1), chroma.expand(x0.shape[0], -1, -1)
    return project_to_bins(x0, y, luma, chroma, jpeg.subsampling)
