"""Make a warm start consistent with what the input says for certain.

* Holes alone: the observed pixels are exact, so the warm start keeps them and only fills the holes.
* JPEG alone: every clean candidate must re-encode into the bins of the decoded input, so the warm start's DCT
  coefficients are clipped into them (:func:`degradations.functional.jpeg_bins.project_to_bins`).

With noise (or noise or holes before a JPEG) the input holds no exact value of the clean image, so nothing is
imposed.
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


def consistent_with_input(x0: Tensor, y: Tensor, degradation: Degradation, params: dict[str, Tensor]) -> Tensor:
    """``x0`` with the observed pixels of a holes-only degradation, or clipped into the quantization bins of ``y``
    for a JPEG-only one; else ``x0`` itself."""
    found = [(prefix, member) for prefix, member in members(degradation) if member.name != "identity"]
    if x0.shape != y.shape or not found:
        return x0
    if all(member.name == "mask" for _, member in found):
        observed = degradation.observed_mask(params).to(device=x0.device, dtype=x0.dtype)
        return observed * y + (1 - observed) * x0
    if len(found) != 1 or found[0][1].name != "jpeg":
        return x0
    prefix, jpeg = found[0]
    luma, chroma = jpeg_tables(prefix, params)
    luma, chroma = luma.expand(x0.shape[0], -1, -1), chroma.expand(x0.shape[0], -1, -1)
    return project_to_bins(x0, y, luma, chroma, jpeg.subsampling)
