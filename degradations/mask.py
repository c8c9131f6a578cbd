"""Missing pixels (inpainting): random holes, scratch-like strokes, or a user-supplied mask file."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from degradations.args import ArgError, as_bool, as_choice, as_range, format_spec, reject_unused, sample
from degradations.base import Degradation, Params
from degradations.functional.masks import fill_missing, load_mask, random_holes, random_strokes
from degradations.registry import register

KINDS = ("holes", "strokes", "file")


@register
class Mask(Degradation):
    """Remove pixels. Mask convention everywhere: **1 = observed, 0 = missing**.

    Args:
        kind: ``"holes"`` (square holes, the inpainting setting of the paper), ``"strokes"`` (thin curved
            scratches) or ``"file"`` (a mask image). Arguments the kind does not use must be left unset.
        coverage: holes: fraction of pixels to remove, in [0, 1] (default 0.05).
        size: holes: side of each square hole in pixels, integer >= 1 (default 10).
        count: strokes: number of strokes, integer >= 0 (default 5).
        width: strokes: stroke thickness in pixels, > 0 (default 3).
        path: file: mask image; **nonzero pixels are observed, zero pixels are missing**; resized with nearest
            neighbour to the image size.
        invert: file: flip the file's meaning (nonzero = missing). Default False.
        fill: value written into missing pixels by ``apply``, in [0, 1] (default 0).

    ``forward_model`` is the linear ``x·mask`` (missing pixels are 0 there whatever ``fill`` is; the solver uses
    ``observed_mask`` to ignore them).

    Params:
        ``mask``: (B, 1, H, W) float32 in {0, 1}.

    Example:
        >>> Mask(coverage=(0.05, 0.2)).spec()
        'mask(kind=holes,coverage=0.05:0.2,size=10,fill=0)'
    """

    name = "mask"
    linear = True

    def __init__(
        self,
        *,
        kind: object = "holes",
        coverage: object = None,
        size: object = None,
        count: object = None,
        width: object = None,
        path: object = None,
        invert: object = None,
        fill: object = 0.0,
    ) -> None:
        self.kind = as_choice("kind", kind, KINDS)
        self.fill = as_range("fill", fill, low=0, high=1, allow_range=False)[0]
        self.coverage = self.size = self.count = self.width = self.path = self.invert = None
        if self.kind == "holes":
            reject_unused(self.kind, count=count, width=width, path=path, invert=invert)
            self.coverage = as_range("coverage", 0.05 if coverage is None else coverage, low=0, high=1)
            self.size = as_range("size", 10 if size is None else size, low=1, integer=True)
        elif self.kind == "strokes":
            reject_unused(self.kind, coverage=coverage, size=size, path=path, invert=invert)
            self.count = as_range("count", 5 if count is None else count, low=0, integer=True)
            self.width = as_range("width", 3 if width is None else width, low=0)
            if self.width[0] <= 0:
                raise ArgError("width", f"must be positive, got {width!r}")
        else:
            reject_unused(self.kind, coverage=coverage, size=size, count=count, width=width)
            if not isinstance(path, (str, Path)) or not str(path):
                raise ArgError("path", f"kind='file' needs a mask image path, got {path!r}")
            self.path = str(path)
            self.invert = as_bool("invert", False if invert is None else invert)

    def sample_params(
        self, shape: tuple[int, int, int, int], generator: torch.Generator | None = None
    ) -> Params:
        b, _, h, w = shape
        if self.kind == "holes":
            cov = sample(self.coverage, b, generator).tolist()
            sizes = sample(self.size, b, generator, integer=True).tolist()
            masks = [random_holes(h, w, c, s, generator) for c, s in zip(cov, sizes)]
        elif self.kind == "strokes":
            counts = sample(self.count, b, generator, integer=True).tolist()
            widths = sample(self.width, b, generator).tolist()
            masks = [random_strokes(h, w, n, wd, generator) for n, wd in zip(counts, widths)]
        else:
            masks = [load_mask(self.path, h, w, self.invert)] * b
        return {"mask": torch.stack(masks)[:, None].to(torch.float32)}

    def apply(self, x: Tensor, params: Params) -> Tensor:
        return fill_missing(x, params["mask"], self.fill)

    def forward_model(self, x: Tensor, params: Params) -> Tensor:
        return x * params["mask"].to(dtype=x.dtype, device=x.device)

    def observed_mask(self, params: Params) -> Tensor:
        return params["mask"]

    def spec(self) -> str:
        keys = {"holes": ("coverage", "size"), "strokes": ("count", "width"), "file": ("path", "invert")}
        args = (
            [("kind", self.kind)] + [(k, getattr(self, k)) for k in keys[self.kind]] + [("fill", self.fill)]
        )
        return format_spec(self.name, args)
