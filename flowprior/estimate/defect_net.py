"""A learned defect detector: a small fully convolutional network that marks dark-filled holes and thin scratches.

The classical detector (:mod:`flowprior.estimate.defects`) decides by thresholds on darkness, shape and contrast;
after noise and JPEG a scratch's fill bleeds into its neighbours and its recall falls to ~0.2. This network
learns the same decision from synthetic defects over the training pool (``flowprior train defects``,
:mod:`flowprior.train_defects`): its input is the damaged RGB image, its output a per-pixel defect logit.

Architecture (~0.23 M parameters): a full-resolution stem, two stride-2 stages of dilated residual blocks (the
context that tells a black square from a dark object reaches ~70 px), and a decoder that adds the skips back,
so one-pixel scratches keep their full-resolution evidence. Large images run block by block with a halo.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowprior.estimate.defects import DefectEstimate, detect_defects
from flowprior.estimate.planes import as_planes
from flowprior.prior.checkpoint import read_checkpoint, save_checkpoint


@dataclass
class DefectNetConfig:
    """Widths of the three resolutions and the dilations of the residual blocks at the two coarse ones."""

    width: int = 16
    mid_width: int = 32
    low_width: int = 48
    mid_dilations: tuple[int, ...] = (1, 2, 4)
    low_dilations: tuple[int, ...] = (1, 2, 4)

    def __post_init__(self):
        self.mid_dilations, self.low_dilations = tuple(self.mid_dilations), tuple(self.low_dilations)
        if min(self.width, self.mid_width, self.low_width) < 1:
            raise ValueError("widths must be positive")


class DilatedBlock(nn.Module):
    """``x + conv(act(conv(x)))`` with a dilated first convolution: context without losing resolution."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.wide = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.mix = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.mix(F.silu(self.wide(F.silu(x))))


class DefectNet(nn.Module):
    """RGB in [0, 1], (B, 3, H, W) -> defect logits (B, 1, H, W); H and W any size (padded to a multiple of 4)."""

    def __init__(self, config: DefectNetConfig | None = None):
        super().__init__()
        self.config = config = config or DefectNetConfig()
        w, m, lo = config.width, config.mid_width, config.low_width
        self.stem = nn.Sequential(nn.Conv2d(4, w, 3, padding=1), nn.SiLU(), nn.Conv2d(w, w, 3, padding=1))
        self.down1 = nn.Conv2d(w, m, 3, stride=2, padding=1)
        self.mid = nn.Sequential(*(DilatedBlock(m, d) for d in config.mid_dilations))
        self.down2 = nn.Conv2d(m, lo, 3, stride=2, padding=1)
        self.low = nn.Sequential(*(DilatedBlock(lo, d) for d in config.low_dilations))
        self.up2 = nn.Conv2d(lo, m, 1)
        self.merge_mid = DilatedBlock(m, 1)
        self.up1 = nn.Conv2d(m, w, 1)
        self.head = nn.Sequential(nn.Conv2d(2 * w, w, 3, padding=1), nn.SiLU(), nn.Conv2d(w, 1, 1))

    def forward(self, rgb: Tensor) -> Tensor:
        height, width = rgb.shape[-2:]
        pad = (0, -width % 4, 0, -height % 4)
        x = F.pad(rgb, pad, mode="replicate")
        # the darkest channel is the fill's signature (black in every channel); giving it saves the net a layer
        x = torch.cat([x, x.amax(1, keepdim=True)], 1) * 2 - 1
        full = self.stem(x)
        mid = self.mid(self.down1(F.silu(full)))
        low = self.low(self.down2(F.silu(mid)))
        mid = self.merge_mid(mid + F.interpolate(self.up2(low), size=mid.shape[-2:], mode="bilinear"))
        up = F.interpolate(self.up1(mid), size=full.shape[-2:], mode="bilinear")
        return self.head(torch.cat([F.silu(full), F.silu(up)], 1))[..., :height, :width]


def save_defect_net(path: str | Path, model: DefectNet, meta: dict | None = None, **extra) -> str:
    return save_checkpoint(path, {"kind": "defects", **asdict(model.config)}, model.state_dict(), meta, **extra)


def load_defect_net(path: str | Path, expected_sha256: str | None = None) -> DefectNet:
    payload = read_checkpoint(path, expected_sha256)
    config = {k: v for k, v in payload["config"].items() if k != "kind"}
    model = DefectNet(DefectNetConfig(**config))
    model.load_state_dict({k: v.float() for k, v in payload["state_dict"].items()})
    return model.eval().requires_grad_(False)


BLOCK, HALO = 512, 48  # block side and context on each side for large images (the net's reach is ~70 px)


@torch.no_grad()
def defect_probability(model: DefectNet, rgb: Tensor) -> Tensor:
    """(B, 1, H, W) probabilities, block by block with a halo when the image is larger than one block."""
    height, width = rgb.shape[-2:]
    if height <= BLOCK + 2 * HALO and width <= BLOCK + 2 * HALO:
        return torch.sigmoid(model(rgb))
    out = torch.empty(rgb.shape[0], 1, height, width)
    for top in range(0, height, BLOCK):
        for left in range(0, width, BLOCK):
            y0, x0 = max(0, top - HALO), max(0, left - HALO)
            y1, x1 = min(height, top + BLOCK + HALO), min(width, left + BLOCK + HALO)
            piece = torch.sigmoid(model(rgb[..., y0:y1, x0:x1]))
            bottom, right = min(height, top + BLOCK), min(width, left + BLOCK)
            out[..., top:bottom, left:right] = piece[..., top - y0:bottom - y0, left - x0:right - x0]
    return out


def image_probability(image: object, model: DefectNet) -> np.ndarray:
    """(H, W) defect probabilities of one image (see :func:`flowprior.estimate.planes.as_planes`; gray is
    repeated to RGB)."""
    planes = as_planes(image)
    rgb = torch.from_numpy(np.ascontiguousarray(planes, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    rgb = rgb.expand(-1, 3, -1, -1) if rgb.shape[1] == 1 else rgb[:, :3]
    return defect_probability(model, rgb)[0, 0].numpy()


def mask_from_probability(probability: np.ndarray, threshold: float = 0.5, grow_to: float | None = None,
                          min_pixels: int = 6) -> DefectEstimate:
    """Hysteresis on the probability: a piece exists where it exceeds ``threshold`` (on at least ``min_pixels``
    pixels: single dark pixels of noise are not defects) and extends over its connected pixels above ``grow_to``
    (default: ``threshold``). Existence and extent are separate decisions: a hole's edge smeared by JPEG is less
    certain than its middle, and an edge pixel left "observed" keeps its black in the restoration."""
    low = threshold if grow_to is None else min(grow_to, threshold)
    candidate = (probability > low).astype(np.uint8)
    count, labels = cv2.connectedComponents(candidate, connectivity=8)
    sure = np.bincount(labels[probability > threshold], minlength=count)
    keep = sure >= min_pixels
    keep[0] = False
    missing = keep[labels]
    confidence = float(np.median(probability[missing])) if missing.any() else 0.0
    return DefectEstimate(missing, int(keep.sum()), confidence, ["learned detector"])


def detect_defects_learned(image: object, model: DefectNet, threshold: float = 0.5,
                           grow_to: float | None = None) -> DefectEstimate:
    """The network's mask of ``image`` (:func:`image_probability`, :func:`mask_from_probability`)."""
    return mask_from_probability(image_probability(image, model), threshold, grow_to)


#: the probability above which a pixel is a defect, chosen on the training pool's validation photos
#: (``python -m benchmarks.estimation_tuning --part learned``; docs/benchmarks.md "Defects: a learned detector")
THRESHOLD = 0.95
#: a piece found at THRESHOLD extends over its connected pixels above this (hysteresis), chosen the same way
GROW_TO = 0.7


@functools.lru_cache(maxsize=1)
def embedded_defect_net() -> DefectNet | None:
    """The embedded detector (``flowprior.weights.EMBEDDED["defects"]``), or None when the package has none."""
    from flowprior.weights import EMBEDDED, embedded_path

    if "defects" not in EMBEDDED:
        return None
    return load_defect_net(*embedded_path("defects"))


def find_defects(image: object, noise_sigma: float = 0.0) -> DefectEstimate:
    """The defect mask ``--degradation auto`` and ``flowprior inspect`` use: the embedded learned detector, or the
    classical one (:func:`~flowprior.estimate.defects.detect_defects`) when none is embedded."""
    model = embedded_defect_net()
    if model is None:
        return detect_defects(image, noise_sigma)
    # (the classical rule "a large dark area is scene", applied to the network's mask, lowered the test photos'
    # scratch recall 0.93 -> 0.87 and precision 0.82 -> 0.81: the network already knows a black sky)
    return detect_defects_learned(image, model, THRESHOLD, GROW_TO)
