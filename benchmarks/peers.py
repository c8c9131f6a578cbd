"""The peers of Table 1: classical denoisers, our Deep Image Prior, and the degraded input itself.

Every peer is a function ``(degraded, mask, setting, **params) -> restored``: ``degraded`` (1, 3, H, W) in [0, 1],
``mask`` (1, 1, H, W) with 1 = observed (or None), ``setting`` a key of ``settings.SETTINGS``; the result is
(1, 3, H, W) in [0, 1] on the input's device and dtype. Classical peers work in numpy float64, the DIP in torch.

The denoisers know nothing about JPEG: for the JPEG settings they are run with an *effective* noise level that is
tuned like any other parameter. For settings with missing pixels ("multi") the holes are first filled with
scikit-image's biharmonic inpainting, then the denoiser runs (inpaint, then denoise). The Deep Image Prior
handles holes itself (they are left out of its loss).

Parameter grids are relative to :data:`BASE_SIGMA`, a rough error level per setting, so a single list of factors
serves every setting; ``benchmarks/table1.py tune`` picks the best grid point per (peer, setting) on validation
crops and writes ``benchmarks/peer_params.json``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from flowprior.warmstart import fill_missing_pixels

#: Rough standard deviation (0-255 units) of the error each setting adds; for JPEG a guess at its RMSE. Grids scale it.
BASE_SIGMA = {"jpeg10": 12.0, "jpeg30": 7.0, "noise5": 5.0, "noise25": 25.0, "multi": 8.0}
#: Multipliers of BASE_SIGMA tried by the tuner (sqrt(2) steps from about a third to nearly three times the base
#: level; JPEG's structured errors make denoisers want sigmas well above the RMSE).
FACTORS = (0.35, 0.5, 0.7, 1.0, 1.4, 2.0, 2.8)
DIP_DEFAULT_ITERATIONS = 300
#: Early-stopping points tried for the Deep Image Prior (one fit per crop gives all of them, see dip.py).
DIP_ITERATIONS = (50, 100, 200, 300, 400, 600)  # capped at 600: a 500x500 fit costs ~1.5 s an iteration on one core


def _to_numpy(x: Tensor) -> np.ndarray:
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"peers take one image at a time, shape (1, C, H, W); got {tuple(x.shape)}")
    return x[0].detach().to("cpu", torch.float64).permute(1, 2, 0).numpy().copy()


def _to_tensor(array: np.ndarray, like: Tensor) -> Tensor:
    out = torch.from_numpy(np.ascontiguousarray(np.clip(array, 0.0, 1.0).transpose(2, 0, 1)))[None]
    return out.to(device=like.device, dtype=like.dtype)


def _inpainted(degraded: Tensor, mask: Tensor | None) -> np.ndarray:
    """The image as numpy (H, W, 3) with missing pixels filled by biharmonic inpainting (unchanged when no mask)."""
    from skimage.restoration import inpaint_biharmonic

    image = _to_numpy(degraded)
    if mask is None:
        return image
    holes = mask[0, 0].detach().cpu().numpy() < 0.5
    if not holes.any():
        return image
    return inpaint_biharmonic(image, holes, channel_axis=-1)


def _sig(value: float) -> float:
    return float(f"{value:.3g}")


def _sigma_grid(key: str, scale: float = 1.0) -> Callable[..., list[dict[str, Any]]]:
    return lambda setting, factors=FACTORS: [{key: _sig(f * BASE_SIGMA[setting] * scale)} for f in factors]


# ------------------------------------------------------------------------------------------------------- peers


def restore_input(degraded: Tensor, mask: Tensor | None, setting: str) -> Tensor:
    """The degraded image itself; missing pixels filled by ``fill_missing_pixels`` so its scores mean something."""
    return degraded.clone() if mask is None else fill_missing_pixels(degraded, mask)


def restore_bm3d(degraded: Tensor, mask: Tensor | None, setting: str, *, sigma: float) -> Tensor:
    """BM3D (the ``bm3d`` package, colour version in the opponent colour space).

    Args:
        sigma: noise standard deviation in 0-255 units (for JPEG an effective value).
    """
    import bm3d

    return _to_tensor(bm3d.bm3d_rgb(_inpainted(degraded, mask), sigma / 255.0), degraded)


def restore_nlm(degraded: Tensor, mask: Tensor | None, setting: str, *, h: float, h_color: float) -> Tensor:
    """OpenCV's fast non-local means for colour images (7x7 patches, 21x21 search window).

    Args:
        h: filter strength of the luminance (0-255 units); h_color: the same for the colour components.
    """
    import cv2

    image = (np.clip(_inpainted(degraded, mask), 0, 1) * 255.0).round().astype(np.uint8)
    # OpenCV works in BGR order; the filter converts to CIELAB internally, so the order matters for h vs h_color.
    out = cv2.fastNlMeansDenoisingColored(np.ascontiguousarray(image[..., ::-1]), None, float(h), float(h_color), 7, 21)
    return _to_tensor(out[..., ::-1].astype(np.float64) / 255.0, degraded)


def restore_tv(degraded: Tensor, mask: Tensor | None, setting: str, *, weight: float) -> Tensor:
    """Total-variation denoising (Chambolle's projection algorithm, scikit-image).

    Args:
        weight: TV weight on [0, 1] images (larger = smoother).
    """
    from skimage.restoration import denoise_tv_chambolle

    return _to_tensor(denoise_tv_chambolle(_inpainted(degraded, mask), weight=weight, channel_axis=-1), degraded)


def restore_wavelet(degraded: Tensor, mask: Tensor | None, setting: str, *, sigma: float) -> Tensor:
    """Wavelet shrinkage (scikit-image, BayesShrink soft thresholds, db2 wavelet, in YCbCr).

    Args:
        sigma: noise standard deviation in 0-255 units (``rescale_sigma`` keeps it in image units).
    """
    from skimage.restoration import denoise_wavelet

    out = denoise_wavelet(_inpainted(degraded, mask), sigma=sigma / 255.0, wavelet="db2", mode="soft",
                          method="BayesShrink", rescale_sigma=True, convert2ycbcr=True, channel_axis=-1)
    return _to_tensor(out, degraded)


def restore_dip(degraded: Tensor, mask: Tensor | None, setting: str, *, iterations: int, seed: int = 0) -> Tensor:
    """Deep Image Prior (``benchmarks/dip.py``): holes are left out of the loss, no inpainting first.

    Args:
        iterations: early-stopping point; seed: seeds the network and its noise input.
    """
    from benchmarks.dip import deep_image_prior

    return deep_image_prior(degraded, mask, iterations=int(iterations), seed=seed).image


# ---------------------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Peer:
    """A peer: its function, its tuning grid and untuned default per setting, and the modules it needs."""

    name: str
    restore: Callable[..., Tensor]
    grid: Callable[[str], list[dict[str, Any]]]
    default: Callable[[str], dict[str, Any]]
    requires: tuple[str, ...] = ()

    def available(self) -> bool:
        return all(importlib.util.find_spec(module) is not None for module in self.requires)

    def default_params(self, setting: str) -> dict[str, Any]:
        """Used when no tuned value exists: factor 1 of BASE_SIGMA (DIP: DIP_DEFAULT_ITERATIONS)."""
        return dict(self.default(setting))


def _nlm_grid(setting: str, factors: tuple[float, ...] = FACTORS) -> list[dict[str, Any]]:
    return [{"h": _sig(f * BASE_SIGMA[setting]), "h_color": _sig(f * BASE_SIGMA[setting] * ratio)}
            for f in factors for ratio in (1.0, 0.5)]


def _at_factor_one(grid: Callable[..., list[dict[str, Any]]]) -> Callable[[str], dict[str, Any]]:
    return lambda setting: grid(setting, factors=(1.0,))[0]


PEERS: dict[str, Peer] = {
    peer.name: peer
    for peer in [
        Peer("input", restore_input, lambda setting: [], lambda setting: {}),
        Peer("bm3d", restore_bm3d, _sigma_grid("sigma"), _at_factor_one(_sigma_grid("sigma")), ("bm3d",)),
        Peer("nlm", restore_nlm, _nlm_grid, _at_factor_one(_nlm_grid), ("cv2",)),
        Peer("tv", restore_tv, _sigma_grid("weight", 1 / 255), _at_factor_one(_sigma_grid("weight", 1 / 255)),
             ("skimage",)),
        Peer("wavelet", restore_wavelet, _sigma_grid("sigma"), _at_factor_one(_sigma_grid("sigma")),
             ("skimage", "pywt")),
        Peer("dip", restore_dip, lambda setting, factors=None: [{"iterations": n} for n in DIP_ITERATIONS],
             lambda setting: {"iterations": DIP_DEFAULT_ITERATIONS}),
    ]
}


def available_peers() -> list[str]:
    """Names of the peers whose packages are installed, in table order."""
    return [name for name, peer in PEERS.items() if peer.available()]


def run_peer(name: str, degraded: Tensor, mask: Tensor | None, setting: str,
             params: dict[str, Any] | None = None) -> Tensor:
    """Run peer ``name`` with ``params`` (defaults: :meth:`Peer.default_params`)."""
    if name not in PEERS:
        raise KeyError(f"unknown peer {name!r}; known: {', '.join(PEERS)}")
    peer = PEERS[name]
    if not peer.available():
        raise RuntimeError(f"peer {name!r} needs the packages {', '.join(peer.requires)}; pip install them")
    chosen = peer.default_params(setting) if params is None else params
    return peer.restore(degraded, mask, setting, **chosen)
