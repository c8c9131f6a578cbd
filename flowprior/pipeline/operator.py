"""Stage *bind operator*: the recipe's degradation spec becomes an operator with its params for this image (seeded
samples; a mask file's holes; never a drawn realization), and the image's channels meet the prior's."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from degradations import parse
from flowprior.errors import UsageError
from flowprior.pipeline.image_rows import ImageRows
from flowprior.pipeline.recipe import RestoreRecipe


@dataclass
class BoundOperator:
    """What :func:`bind_operator` settles: the operator, its params and the colour space the solver works in."""

    op: object  # a degradations.Degradation
    params: dict[str, Tensor]
    observed_mask: Tensor | None  # (B, 1, H, W), 1 = observed; None without holes
    channels: int  # the prior's: the solver works in its colour space
    gray: bool  # a 1-channel image, solved as RGB and averaged back when the prior is RGB
    height: int  # the clean grid the restoration is on: the image's, or factor x larger for a downsampling
    width: int


def bind_operator(source: ImageRows, recipe: RestoreRecipe, mask: Tensor | None, prior) -> BoundOperator:
    """Check the image against the prior and the mask, and bind the recipe's operator (:func:`build_operator`)."""
    height, width, gray = source.height, source.width, source.channels == 1
    channels = getattr(prior, "in_channels", 3)
    if channels == 1 and not gray:
        raise UsageError("this prior models gray images (1 channel); convert the colour input to gray first")
    if mask is not None:
        if mask.shape[-2:] != (height, width):
            raise UsageError(f"mask size {tuple(mask.shape[-2:])} does not match the image {(height, width)}")
        mask = (mask.reshape(-1, 1, height, width).expand(source.batch, -1, -1, -1) > 0.5).float()
    op, params = build_operator(recipe, (source.batch, channels, height, width), mask)
    return BoundOperator(op, params, op.observed_mask(params), channels, gray, *op.input_size(height, width))


def build_operator(recipe: RestoreRecipe, shape: tuple[int, int, int, int], mask: Tensor | None):
    """(operator, params) for observed images of ``shape``: the spec (+ ``mask`` when a mask is given) with the
    recipe's params and JPEG hardness, params sampled from the recipe's seed for the clean images
    (``op.input_size``: larger than ``shape`` for a downsampling), the mask's holes in its ``mask`` params.

    Raises:
        UsageError: a bad spec, a size change without an inverse size, a mask before a size change, a realization
            it cannot estimate, a missing mask.
    """
    spec = recipe.degradation
    if mask is not None and "mask" not in spec.replace("(", "+").split("+"):
        spec = f"{spec}+mask"
    try:
        op = parse(spec, recipe.params)
        members = getattr(op, "members", [op])
        keys = getattr(op, "keys", [op.name])
        solver_params = {f"{key}.hardness": recipe.solver.jpeg_hardness for key, member in zip(keys, members)
                         if member.name == "jpeg" and f"{key}.hardness" not in recipe.params}
        if solver_params:
            op = parse(spec, {**recipe.params, **solver_params})
    except ValueError as error:
        raise UsageError(str(error)) from None
    clean = op.input_size(shape[2], shape[3])
    if op.output_size(*clean) != (shape[2], shape[3]):
        raise UsageError(f"{spec!r} changes the image size in a way flowprior cannot invert")
    refuse_unestimable(op, spec)
    params = op.sample_params((*shape[:2], *clean), torch.Generator().manual_seed(recipe.seed))
    mask_keys = [key for key in params if key == "mask" or key.endswith(".mask")]
    if mask_keys:
        if mask is None:
            raise UsageError("the degradation includes 'mask': pass the mask of missing pixels with --mask FILE")
        for key in mask_keys:
            if params[key].shape[-2:] != mask.shape[-2:]:  # holes before a downsampling lie on the clean grid
                raise UsageError(f"{spec!r}: a mask file marks pixels of the input, which lie after the size "
                                 "change; put 'mask' after it (e.g. downsample+mask)")
            params[key] = mask.to(params[key].dtype)
    return op, params


def clean_size(recipe: RestoreRecipe, height: int, width: int) -> tuple[int, int]:
    """The size of the restoration of a ``height`` x ``width`` image under the recipe's degradation: the clean
    grid (``factor`` x larger for a downsampling); the image's own when the spec cannot be parsed (the bind
    stage reports that)."""
    try:
        return parse(recipe.degradation, recipe.params).input_size(height, width)
    except ValueError:
        return height, width


def refuse_unestimable(op, spec: str) -> None:
    """Exit 2 before any work when the degradation has a random realization it cannot estimate (rain, snow)."""
    if missing := [m if "." in m else f"{op.name}.{m}" for m in op.unestimable()]:  # a chain's are prefixed
        raise UsageError(f"{spec!r}: flowprior cannot estimate the {', '.join(missing)} of a photo yet, and "
                         "restoring with a randomly drawn one would model some other photo; leave "
                         f"{', '.join(sorted({m.split('.')[0].split('#')[0] for m in missing}))} out of --degradation")


def estimate_realization(op, y: Tensor, params: dict[str, Tensor]) -> dict[str, Tensor]:
    """``params`` with the damage's realization (a haze depth) estimated from ``y``, never drawn from the seed."""
    return op.estimate_params(y, params) if op.realization else params
