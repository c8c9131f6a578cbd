"""Restoration, the library API: :func:`restore` (one call, any kind of image) and :func:`restore_tensor`.

The restore itself runs as named stages in :mod:`flowprior.pipeline` (bind operator -> warm start -> solve ->
blend, :func:`~flowprior.pipeline.rows.restore_rows`); the names below are re-exported from there, so
``from flowprior.restoration import RestoreRecipe, build_recipe, restore_tensor`` keeps working.

Library use::

    import flowprior
    restored = flowprior.restore(image, degradation="jpeg+noise", params={"jpeg.quality": 30})
    restored, std, _ = flowprior.restore(image, degradation="noise", params={"noise.sigma": 25}, samples=8)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from flowprior.auto_degradation import AUTO, bind_estimate
from flowprior.errors import UsageError
from flowprior.pipeline.auto_recipe import AUTO_RECIPES, FAST_OPERATORS, auto_recipe_name, find_restore_recipe
from flowprior.pipeline.image_rows import ImageRows
from flowprior.pipeline.operator import build_operator, clean_size
from flowprior.pipeline.recipe import (
    RECIPE_SECTIONS,
    RestoreRecipe,
    RestoreResult,
    SolverSection,
    TilingSection,
    build_recipe,
    load_model,
    split_settings,
    with_total_steps,
)
from flowprior.pipeline.rows import restore_rows
from flowprior.pipeline.solve import data_weight, initial_latents
from flowprior.pipeline.warm_start import make_initializer

# the names these had when they were private helpers of this module (tests use them)
_build_operator, _data_weight = build_operator, data_weight

__all__ = [
    "AUTO_RECIPES", "FAST_OPERATORS", "RECIPE_SECTIONS", "ImageRows", "PosteriorImages", "RestoreRecipe",
    "RestoreResult", "SolverSection", "TilingSection", "auto_recipe_name", "build_recipe", "find_restore_recipe", "initial_latents",
    "load_model", "make_initializer", "restore", "restore_rows", "restore_tensor", "split_settings", "with_total_steps",
]


def restore_tensor(y: Tensor, recipe: RestoreRecipe | None = None, mask: Tensor | None = None, prior=None,
                   progress: bool = False) -> RestoreResult:
    """Restore a degraded image.

    Args:
        y: (B, C, H, W) degraded images of one size in [0, 1], C = 1 or 3 (all tiles of all images are one batch);
            the result is on the clean grid (``factor`` x larger for a ``downsample``).
        recipe: settings; defaults to :class:`RestoreRecipe`.
        mask: (B, 1, H, W) with 1 = observed, 0 = missing, or None.
        prior: a loaded prior; defaults to ``recipe.model``.
        progress: show a tqdm bar (steps x tiles).
    """
    if y.ndim != 4 or y.shape[1] not in (1, 3):
        raise UsageError(f"expected (B, C, H, W) images with 1 or 3 channels, got shape {tuple(y.shape)}")
    if not torch.isfinite(y).all():
        raise UsageError("the input image contains NaN or inf values")
    height, width = clean_size(recipe or RestoreRecipe(), y.shape[2], y.shape[3])  # larger after a downsampling
    out = torch.empty((*y.shape[:2], height, width), dtype=torch.float32)

    def emit(b: int, y0: int, y1: int, rows: Tensor) -> None:
        out[b : b + 1, :, y0:y1] = rows

    info = restore_rows(ImageRows.of(y), recipe, mask, prior, progress, emit)
    return RestoreResult(out, info)


class PosteriorImages(NamedTuple):
    """What :func:`restore` returns with ``samples``: the restoration (the MAP or the posterior mean, per the
    recipe's ``posterior.output``) in the caller's kind and layout; the per-pixel, per-channel posterior standard
    deviation in that layout as float32 (values 0 .. 0.5 on the [0, 1] scale, never quantized); and, with
    ``keep_samples``, the N samples, each like ``image`` (else None)."""

    image: Tensor | np.ndarray
    std: Tensor | np.ndarray
    samples: list | None


def restore(image, degradation: str = "jpeg+noise", mask=None, recipe: RestoreRecipe | str | Path | None = "auto",
            params: dict[str, Any] | None = None, samples: int | None = None, keep_samples: bool = False,
            **settings) -> Tensor | np.ndarray | PosteriorImages:
    """Restore an image: the one-call Python API.

    Args:
        image: a path, a (H, W[, C]) uint8/uint16/float numpy array, or a (C, H, W) / (1, C, H, W) float tensor.
        degradation: what happened to it, e.g. ``"jpeg+noise+mask"``.
        mask: 1 = observed, 0 = missing, same kinds of input as ``image`` (or a path), or None.
        recipe: ``"auto"`` (as ``flowprior restore``: :func:`auto_recipe_name`), a shipped recipe's name, a YAML
            path, a :class:`RestoreRecipe`, or None for the built-in defaults.
        params: operator arguments, e.g. ``{"jpeg.quality": 30, "noise.sigma": 5}``.
        samples: also draw this many posterior samples around the restoration (as ``flowprior restore
            --samples``: the recipe's ``posterior`` section, e.g. ``posterior__burn_in=10``, seeded by
            ``posterior.seed``) and return :class:`PosteriorImages`.
        keep_samples: with ``samples``, return the samples too.
        **settings: recipe overrides with dotted names written with ``__``, e.g. ``solver__weight=20``.

    Returns:
        The restored image in the same kind and layout as ``image`` (a path gives a (1, C, H, W) tensor); with
        ``samples``, a :class:`PosteriorImages`.

    Example:
        >>> import flowprior, torch  # doctest: +SKIP
        >>> flowprior.restore(torch.rand(3, 64, 64), "noise", params={"noise.sigma": 15}).shape  # doctest: +SKIP
        torch.Size([3, 64, 64])
    """
    from flowprior.io import read_image

    overrides = {key.replace("__", "."): value for key, value in settings.items()}
    overrides["degradation"] = degradation
    if samples is not None:
        overrides["posterior.samples"] = samples  # checked with the recipe (at least 1)
    elif keep_samples:
        raise UsageError("keep_samples returns the posterior samples of samples=N; pass samples")
    if isinstance(recipe, str):
        recipe = find_restore_recipe(recipe, degradation, overrides.get("init"))
    recipe = build_recipe(recipe, overrides, params or {})
    tensor, layout = _as_tensor(image, read_image)
    mask_tensor = None if mask is None else _as_tensor(mask, read_image)[0][:, :1]
    if recipe.degradation == AUTO:
        found = bind_estimate(recipe, tensor[:1], image if isinstance(image, (str, Path)) else None,
                              mask_given=mask_tensor is not None)
        mask_tensor = found.mask if mask_tensor is None else mask_tensor
    if samples is not None:
        return _restore_with_samples(image, tensor, recipe, mask_tensor, keep_samples, layout)
    result = restore_tensor(tensor, recipe, mask_tensor)
    return layout(result.image)


def _restore_with_samples(image, tensor: Tensor, recipe: RestoreRecipe, mask: Tensor | None, keep_samples: bool,
                          layout) -> PosteriorImages:
    """:func:`flowprior.posterior.sample_restoration` under the recipe's ``posterior`` section, its own seeded
    generator, and its results in the caller's layout (the std as floats)."""
    from flowprior.posterior.sampling import sample_restoration

    generator = torch.Generator().manual_seed(recipe.posterior.seed)
    out = sample_restoration(tensor, recipe, mask, config=recipe.posterior, generator=generator,
                             keep_samples=keep_samples)
    kept = None if out.samples is None else [layout(sample) for sample in out.samples]
    return PosteriorImages(layout(out.image), _float_layout(image, out.std), kept)


def _float_layout(image, values: Tensor):
    """(1, C, H, W) float values in the layout of ``image`` (as :func:`_as_tensor` maps it back), kept float32."""
    if isinstance(image, np.ndarray):
        out = values[0].permute(1, 2, 0).numpy().astype(np.float32)
        return out[..., 0] if image.ndim == 2 else out
    if isinstance(image, Tensor) and image.ndim == 3:
        return values[0]
    return values


def _as_tensor(image, read_image):
    """-> ((1, C, H, W) float tensor in [0, 1], function mapping a result back to the caller's layout)."""
    if isinstance(image, (str, Path)):
        return read_image(image).pixels, lambda t: t
    if isinstance(image, np.ndarray):
        scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(image.dtype, 1.0)
        array = image.astype(np.float32) / scale
        chw = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
        tensor = torch.from_numpy(np.ascontiguousarray(chw))[None]

        def back(t: Tensor):
            out = t[0].permute(1, 2, 0).numpy()
            out = out[..., 0] if image.ndim == 2 else out
            return (out * scale).round().astype(image.dtype) if scale != 1.0 else out.astype(image.dtype)

        return tensor, back
    if isinstance(image, Tensor):
        if image.ndim == 3:
            return image[None], lambda t: t[0]
        return image, lambda t: t
    raise UsageError(f"cannot restore an object of type {type(image).__name__}")
