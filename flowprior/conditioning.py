"""What is known about a degradation, as per-pixel input maps for the learned warm starts (and the solver's λ).

One function, :func:`condition_maps`, turns an operator and its params into ``CHANNELS`` maps at the image's
resolution. Every quantity comes with a "known" flag: an unknown quantity is the value 0 with flag 0, so one
network serves both declared use (the user typed ``--set noise.sigma=25``) and blind use (nothing declared; the
estimators of ``flowprior.estimate`` may fill it in later). Training drops each quantity to unknown at random
(:func:`drop_unknown`), so the network learns both.

Channels, in order (values chosen to lie roughly in [0, 1]):

0. ``sigma``: the additive noise std on the 0–255 scale, divided by 50 (the top of the training range);
1. ``sigma_known``: 1 where channel 0 is meaningful;
2. ``jpeg_luma``: log of the mean luma quantization step over log 255 (0 = no quantization, as with no JPEG);
3. ``jpeg_chroma``: the same for the chroma table;
4. ``jpeg_subsampled``: 1 for 4:2:0 chroma, 0 for 4:4:4 or no JPEG;
5. ``jpeg_known``: 1 where channels 2–4 are meaningful;
6. ``observed``: the observed mask (1 observed, 0 missing); 1 everywhere when nothing is missing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import torch
from torch import Tensor

from degradations import Degradation
from degradations.base import Chain
from degradations.functional.jpeg import quantization_tables
from degradations.functional.jpeg_noise import quantization_noise_std

CHANNELS = 7
NAMES = ("sigma", "sigma_known", "jpeg_luma", "jpeg_chroma", "jpeg_subsampled", "jpeg_known", "observed")
#: the quantities a caller may declare unknown
QUANTITIES = ("noise", "jpeg")
SIGMA_SCALE = 50.0  # 0–255 scale; σ 50 maps to 1


def members(degradation: Degradation) -> Iterator[tuple[str, Degradation]]:
    """(params prefix, operator) of every member; a lone operator has the empty prefix."""
    if isinstance(degradation, Chain):
        yield from ((f"{key}.", member) for key, member in zip(degradation.keys, degradation.members))
    else:
        yield "", degradation


def acting_members(degradation: Degradation, params: dict[str, Tensor] | None = None
                   ) -> list[tuple[str, Degradation]]:
    """:func:`members` that change the image: identities left out and, with ``params``, a mask that hides no pixel
    (the whole-image path passes an all-observed mask; it must not change what runs)."""
    def hides_nothing(prefix: str) -> bool:
        mask = None if params is None else params.get(f"{prefix}mask")
        return mask is not None and bool((mask > 0.5).all())

    return [(prefix, member) for prefix, member in members(degradation)
            if member.name != "identity" and not (member.name == "mask" and hides_nothing(prefix))]


def jpeg_steps(luma: Tensor, chroma: Tensor) -> tuple[Tensor, Tensor]:
    """(B,) normalized log mean quantization steps of (B, 8, 8) luma and chroma tables (see channels 2–3)."""
    scale = math.log(255.0)
    return (luma.double().mean((1, 2)).log() / scale, chroma.double().mean((1, 2)).log() / scale)


def jpeg_tables(prefix: str, params: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """(B, 8, 8) luma and chroma tables of the JPEG member at ``prefix``: the file's own (``luma_table``,
    ``chroma_table`` params, read from the bitstream), or those of its ``quality``."""
    if f"{prefix}luma_table" in params:
        return params[f"{prefix}luma_table"].reshape(-1, 8, 8), params[f"{prefix}chroma_table"].reshape(-1, 8, 8)
    return quantization_tables(params[f"{prefix}quality"].reshape(-1))


def _jpeg_values(degradation: Degradation, params: dict[str, Tensor], batch: int) -> Tensor:
    """(B, 3) luma step, chroma step, subsampled of the last JPEG member (the one whose artifacts are seen)."""
    values = torch.zeros(batch, 3, dtype=torch.float64)
    for prefix, member in members(degradation):
        if member.name != "jpeg":
            continue
        luma_step, chroma_step = jpeg_steps(*jpeg_tables(prefix, params))
        values[:, 0], values[:, 1] = luma_step.expand(batch), chroma_step.expand(batch)
        values[:, 2] = 1.0 if member.subsampling == "420" else 0.0
    return values


def data_noise_std(degradation: Degradation, params: dict[str, Tensor], jpeg_modelled: bool) -> Tensor | None:
    """(B,) std on the [0, 1] scale of what separates the observation from the data term's model of it, or None
    when nothing does: the additive noise, plus (when the data term does not model the JPEG, ``jpeg_modelled``
    False: the paper's identity term) each JPEG member's quantization noise from its tables, the file's own when
    the input was a JPEG. The solver's λ follows it (:func:`flowprior.solver.weighting.noise_matched_weight`)."""
    variances = []
    std = degradation.noise_std(params)
    if std is not None:
        variances.append(std.to(torch.float64).reshape(-1) ** 2)
    if not jpeg_modelled:
        for prefix, member in members(degradation):
            if member.name == "jpeg":
                variances.append(quantization_noise_std(*jpeg_tables(prefix, params), member.subsampling) ** 2)
    return torch.sqrt(sum(variances)) if variances else None


def condition_maps(degradation: Degradation, params: dict[str, Tensor], shape: tuple[int, int, int, int],
                   unknown: Iterable[str] = ()) -> Tensor:
    """(B, CHANNELS, H, W) float32 maps of what is known about the degradation of a (B, C, H, W) batch.

    Args:
        degradation: the operator the image went through.
        params: its parameters (batch first), as ``sample_params`` returns them.
        shape: the degraded batch's shape.
        unknown: quantities (``"noise"``, ``"jpeg"``) to report as unknown whatever the operator says.
    """
    unknown = set(unknown)
    if not unknown <= set(QUANTITIES):
        raise ValueError(f"unknown quantities must be among {QUANTITIES}, got {sorted(unknown)}")
    batch, _, height, width = shape
    values = torch.zeros(batch, CHANNELS - 1, dtype=torch.float64)
    std = degradation.noise_std(params)
    if std is not None:
        values[:, 0] = std.to(torch.float64).reshape(-1).expand(batch) * 255.0 / SIGMA_SCALE
    values[:, 1] = 1.0
    values[:, 2:5] = _jpeg_values(degradation, params, batch)
    values[:, 5] = 1.0
    if "noise" in unknown:
        values[:, 0:2] = 0.0
    if "jpeg" in unknown:
        values[:, 2:6] = 0.0
    maps = values.float()[:, :, None, None].expand(batch, CHANNELS - 1, height, width)
    observed = degradation.observed_mask(params)
    observed = torch.ones(batch, 1, height, width) if observed is None else observed.float().expand(batch, 1, -1, -1)
    return torch.cat([maps, observed.cpu()], dim=1).contiguous()


def drop_unknown(maps: Tensor, probability: float, generator: torch.Generator) -> Tensor:
    """A copy of ``maps`` where each sample's noise and JPEG quantities are independently made unknown with
    ``probability`` (training: one network for declared and blind use). The mask is never dropped: missing
    pixels are always known to the network through it (a detected mask is still a mask)."""
    out = maps.clone()
    batch = maps.shape[0]
    for channels in ((0, 1), (2, 3, 4, 5)):
        drop = torch.rand(batch, generator=generator) < probability
        out[drop, channels[0]:channels[-1] + 1] = 0.0
    return out


def describe(maps: Tensor) -> dict[str, object]:
    """What the network was given, for the sidecar: per quantity its value or ``"unknown"``."""
    first = maps[0, :, 0, 0].double()
    info: dict[str, object] = {}
    info["noise_sigma"] = round(float(first[0]) * SIGMA_SCALE, 4) if first[1] > 0.5 else "unknown"
    if first[5] > 0.5:
        info["jpeg_mean_step"] = {"luma": round(math.exp(float(first[2]) * math.log(255.0)), 3),
                                  "chroma": round(math.exp(float(first[3]) * math.log(255.0)), 3),
                                  "subsampling": "420" if first[4] > 0.5 else "444"}
    else:
        info["jpeg_mean_step"] = "unknown"
    info["missing_fraction"] = round(1.0 - float(maps[:, 6].double().mean()), 6)
    return info
