"""The classical warm start for linear damage the learned one was not trained on: ``--init inverse``.

Going back through the operator, last member first:

* missing pixels are filled from their surroundings (as the identity warm start does);
* declared Gaussian noise of at least :data:`DENOISE_FROM` is first removed by the embedded IR-Flow network
  (conditioned on the noise σ: white noise on a blurred or small image is what it was trained to remove), and the
  steps below then assume the smaller residual noise :func:`residual_noise`;
* a ``blur`` is undone by Wiener deconvolution with the declared kernel, regularized from the noise
  (:func:`degradations.functional.deconvolve.wiener_deconvolve`; mirror extension, so no border ringing);
* a ``downsample`` by f is undone by bicubic upsampling and back-projection onto the observation (each step
  makes the estimate's downsampling closer to the input), :data:`BACK_PROJECTION_STEPS` steps without noise and
  one with it (more steps fit the noise);
* any other member uses its own ``pseudo_inverse`` (JPEG and noise: none).

Every constant was chosen on 8 validation crops (256², the training pool's validation photos, degradation seed 7)
and never on the test photos; docs/benchmarks.md ("Blur and downsampling") has the measurements.
"""

from __future__ import annotations

import torch
from torch import Tensor

from degradations import Degradation, parse
from degradations.functional.deconvolve import back_project, wiener_deconvolve
from flowprior.conditioning import members
from flowprior.warmstart.base import Initializer, register_initializer
from flowprior.warmstart.identity import fill_missing_pixels
from flowprior.warmstart.irflow import IRFlowInitializer

#: the spectrum constant A of natural images (mean squared gradient, [0, 1] scale) in the Wiener regularizer
#: σ²|D|²/A: best of 3e-4..3e-2 at blur σ 1-3 and noise σ 0-10 (blur 2 + noise 2: 35.42 dB; 2e-3: 35.29), except
#: noise σ 10, where 2e-3 was 0.06 dB better
WIENER_SIGNAL = 1e-3
#: denoise first from this noise σ (0-255 scale) up: with blur σ 2, +0.09 dB at σ 2, +0.25 at 3, +0.6 at 5, but
#: -0.01 at σ 1; with x2 downsampling +0.44 dB at σ 2, +2.8 at σ 5
DENOISE_FROM = 2.0 / 255
#: what the deconvolution assumes of the denoised image's noise: min(0.75 σ, 2.5/255) (best at σ 2 and 3: 0.75 σ;
#: at σ 5 and 10: about 2.5/255 remained)
RESIDUAL_FRACTION, RESIDUAL_CAP = 0.75, 2.5 / 255
#: back-projection steps on a noise-free input (x2: 38.36 dB bicubic -> 38.95 after 5; 10 and 20 add nothing)
BACK_PROJECTION_STEPS = 5


def residual_noise(sigma: Tensor, denoised: Tensor) -> Tensor:
    """(B,) noise std the deconvolution assumes: the declared one, or what is left of it where it was denoised."""
    left = torch.minimum(sigma * RESIDUAL_FRACTION, torch.full_like(sigma, RESIDUAL_CAP))
    return torch.where(denoised, left, sigma)


def member_params(prefix: str, params: dict[str, Tensor]) -> dict[str, Tensor]:
    """The params of the member at ``prefix`` (``"blur."``), without the prefix."""
    return {key[len(prefix):]: value for key, value in params.items() if key.startswith(prefix)}


@register_initializer("inverse")
class InverseInitializer(Initializer):
    """x0 = the operator undone member by member, last first (module docstring), on the clean grid.

    Args:
        checkpoint, seed, unknown, ensemble, shrink, wiener, collaborative: those of the IR-Flow denoising step (``make_initializer`` passes the
            recipe's; None: the embedded model). ``unknown=("noise",)`` skips the denoising (its σ would be blind).
        denoise: run the denoising step at all (False: the classical inverse alone).
    """

    name = "inverse"

    def __init__(self, checkpoint=None, seed: int = 0, unknown: tuple[str, ...] = (), ensemble: int = 1,
                 denoise: bool = True, shrink: bool = True, wiener: float = 0.0, collaborative: float = 0.0):
        super().__init__()
        self.denoiser_args = {"checkpoint": checkpoint, "seed": seed, "ensemble": ensemble, "shrink": shrink,
                              "wiener": wiener, "collaborative": collaborative}
        self.denoise = denoise and "noise" not in unknown
        self._denoiser = None
        #: what the denoising step was told (the sidecar's ``warm_start_condition``), None when it did not run
        self.last_condition: dict | None = None
        #: the embedded model the denoising step ran (None when it did not run or ran a given checkpoint)
        self.last_model: str | None = None
        #: SURE's weights of the denoising step (flowprior.warmstart.sure); [] when it did not run
        self.last_shrink: list[float] = []
        #: SURE's weights on the Wiener step of the denoising step (flowprior.warmstart.wiener); [] when it did not run
        self.last_wiener: list[float] = []
        #: SURE's weights on the collaborative step of the denoising step; [] when it did not run
        self.last_collaborative: list[float] = []

    @torch.no_grad()
    def forward(self, y: Tensor, degradation: Degradation, params: dict[str, Tensor]) -> Tensor:
        mask = degradation.observed_mask(params)
        x = y.to(torch.float64)
        if mask is not None:
            x = fill_missing_pixels(x, mask.to(x.dtype))
        std = degradation.noise_std(params)
        sigma = torch.zeros(y.shape[0], dtype=torch.float64) if std is None else std.to(torch.float64).reshape(-1)
        noisy = sigma >= DENOISE_FROM - 1e-12
        if self.denoise and bool(noisy.any()):
            x = torch.where(noisy.reshape(-1, 1, 1, 1), self._denoised(x, sigma), x)
            sigma = residual_noise(sigma, noisy)
        for prefix, member in reversed(list(members(degradation))):
            own = member_params(prefix, params)
            if member.name == "blur":
                x = wiener_deconvolve(x, own["kernel"].to(torch.float64), sigma, WIENER_SIGNAL)
            elif member.name == "downsample":
                steps = BACK_PROJECTION_STEPS if bool((sigma <= 0).all()) else 1
                x = back_project(member.pseudo_inverse(x, own), x, lambda z, m=member, p=own: m.forward_model(z, p),
                                 member.factor, steps)
            elif member.name not in ("noise", "jpeg", "mask", "identity"):
                x = member.pseudo_inverse(x, own)
        return x.clamp(0, 1).to(y.dtype)

    def _denoised(self, x: Tensor, sigma: Tensor) -> Tensor:
        """The embedded IR-Flow's estimate of ``x`` without its Gaussian noise of std ``sigma`` (per image)."""
        if self._denoiser is None:  # the network is loaded only when a noisy input needs it
            self._denoiser = IRFlowInitializer(**self.denoiser_args)
        noise = parse("noise", {"noise.sigma": 1.0})  # a Gaussian noise operator; its σ is set per image below
        noise_params = noise.sample_params(tuple(x.shape), torch.Generator().manual_seed(0))
        noise_params["sigma"] = (sigma * 255.0).to(noise_params["sigma"].dtype)  # its params are on the 0-255 scale
        out = self._denoiser(x.clamp(0, 1).float(), noise, noise_params).to(torch.float64)
        self.last_condition, self.last_model = self._denoiser.last_condition, self._denoiser.last_model
        self.last_shrink, self.last_wiener = list(self._denoiser.last_shrink), list(self._denoiser.last_wiener)
        self.last_collaborative = list(self._denoiser.last_collaborative)
        return out
