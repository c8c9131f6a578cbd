"""Blur: Gaussian (out of focus, soft), disk (defocus) or linear motion, one kernel per image."""

from __future__ import annotations

import torch
from torch import Tensor

from degradations.args import as_choice, as_range, format_spec, reject_unused, sample
from degradations.base import Degradation, Params
from degradations.functional.blur import blur, disk_kernel, gaussian_kernel, motion_kernel, stack_kernels
from degradations.registry import register

KINDS = ("gaussian", "disk", "motion")


@register
class Blur(Degradation):
    """Convolution with a per-image kernel, reflect boundary (see :mod:`degradations.functional.blur`).

    Args:
        kind: ``"gaussian"`` (``sigma`` px, default 2), ``"disk"`` (``radius`` px, default 3) or ``"motion"``
            (``length`` px, default 9; ``angle`` degrees counter-clockwise from horizontal, default 0–180).
            Arguments the kind does not use must be left unset.

    Linear: ``apply`` = ``forward_model``; the adjoint is :func:`degradations.functional.blur.blur_adjoint`.

    Params:
        ``kernel``: (B, k, k) float64 (kernels of different sizes are zero-padded to the largest).

    Example:
        >>> Blur(kind="motion", length=(5, 15)).spec()
        'blur(kind=motion,length=5:15,angle=0:180)'
    """

    name = "blur"
    linear = True

    def __init__(
        self,
        *,
        kind: object = "gaussian",
        sigma: object = None,
        radius: object = None,
        length: object = None,
        angle: object = None,
    ) -> None:
        self.kind = as_choice("kind", kind, KINDS)
        self.sigma = self.radius = self.length = self.angle = None
        if self.kind == "gaussian":
            reject_unused(self.kind, radius=radius, length=length, angle=angle)
            self.sigma = as_range("sigma", 2.0 if sigma is None else sigma, low=0, high=50)
        elif self.kind == "disk":
            reject_unused(self.kind, sigma=sigma, length=length, angle=angle)
            self.radius = as_range("radius", 3.0 if radius is None else radius, low=0, high=100)
        else:
            reject_unused(self.kind, sigma=sigma, radius=radius)
            self.length = as_range("length", 9.0 if length is None else length, low=0, high=200)
            self.angle = as_range("angle", (0.0, 180.0) if angle is None else angle, low=-360, high=360)

    def sample_params(
        self, shape: tuple[int, int, int, int], generator: torch.Generator | None = None
    ) -> Params:
        b = shape[0]
        if self.kind == "gaussian":
            kernels = [gaussian_kernel(s) for s in sample(self.sigma, b, generator).tolist()]
        elif self.kind == "disk":
            kernels = [disk_kernel(r) for r in sample(self.radius, b, generator).tolist()]
        else:
            lengths = sample(self.length, b, generator).tolist()
            angles = sample(self.angle, b, generator).tolist()
            kernels = [motion_kernel(n, a) for n, a in zip(lengths, angles)]
        return {"kernel": stack_kernels(kernels)}

    def apply(self, x: Tensor, params: Params) -> Tensor:
        return blur(x, params["kernel"])

    def forward_model(self, x: Tensor, params: Params) -> Tensor:
        return blur(x, params["kernel"])

    def spec(self) -> str:
        keys = {"gaussian": ("sigma",), "disk": ("radius",), "motion": ("length", "angle")}
        return format_spec(
            self.name, [("kind", self.kind)] + [(k, getattr(self, k)) for k in keys[self.kind]]
        )
