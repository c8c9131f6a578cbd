"""The degradation settings of the evaluation (Helminger et al., Table 1), shared by tuning and benchmarks."""

from __future__ import annotations

import torch

from degradations import parse

#: name -> (spec, operator arguments). "multi" = 10x10 holes over 5% + Gaussian sigma 5 + JPEG q50, in that order.
SETTINGS = {
    "jpeg10": ("jpeg", {"jpeg.quality": 10}),
    "jpeg30": ("jpeg", {"jpeg.quality": 30}),
    "noise5": ("noise", {"noise.sigma": 5}),
    "noise25": ("noise", {"noise.sigma": 25}),
    "multi": ("mask+noise+jpeg", {"mask.coverage": 0.05, "mask.size": 10, "noise.sigma": 5, "jpeg.quality": 50}),
}


#: settings used only to tune recipes (not part of Table 1)
TUNING_SETTINGS = {
    **SETTINGS,
    "holes": ("mask", {"mask.coverage": 0.05, "mask.size": 10}),
    # the README example's composition: a harder JPEG than Table 1's multi
    "multi30": ("mask+noise+jpeg", {"mask.coverage": 0.05, "mask.size": 10, "noise.sigma": 5, "jpeg.quality": 30}),
    # outside the warm start's training distribution (sigma 0-50): where the MAP has to do the work
    "noise75": ("noise", {"noise.sigma": 75}),
    # light noise, where a warm start can do harm (the do-no-harm settings, benchmarks/do_no_harm.py)
    "noise1": ("noise", {"noise.sigma": 1}),
    "noise2": ("noise", {"noise.sigma": 2}),
    # between Table 1's two noise levels: where a rule chosen at sigma 5 and sigma 25 changes its answer
    "noise7": ("noise", {"noise.sigma": 7}),
    "noise10": ("noise", {"noise.sigma": 10}),
    "noise15": ("noise", {"noise.sigma": 15}),
    # just above Table 1's sigma 25, where an estimated sigma lands about half the time
    "noise30": ("noise", {"noise.sigma": 30}),
    # the top of the warm start's training range
    "noise50": ("noise", {"noise.sigma": 50}),
}


def sampled_operator(shape: tuple[int, ...], setting: str, seed: int):
    """The setting's operator and its parameters for images of ``shape``, drawn reproducibly from ``seed``."""
    spec, params = TUNING_SETTINGS[setting]
    op = parse(spec, params)
    return op, op.sample_params(tuple(shape), torch.Generator().manual_seed(seed))


def degrade(clean: torch.Tensor, setting: str, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(degraded images, observed mask or None), reproducible from ``seed``."""
    op, sampled = sampled_operator(tuple(clean.shape), setting, seed)
    return op.apply(clean, sampled), op.observed_mask(sampled)
