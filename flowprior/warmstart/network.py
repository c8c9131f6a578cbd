"""The network size every learned warm start shares, and the choice between the two architectures."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from flowprior.warmstart.leannet import LeanUNet
from flowprior.warmstart.unet import TimeUNet, UNetConfig

ARCHITECTURES = {"timeunet": TimeUNet, "lean": LeanUNet}


@dataclass
class VelocityNetConfig:
    """The network every learned warm start shares (architecture, width, depth, blocks, time embedding,
    conditioning and pixel unshuffling; see :class:`~flowprior.warmstart.unet.UNetConfig`)."""

    width: int = 32
    depth: int = 3
    blocks: int = 1
    time_dim: int = 64
    max_mult: int = 4
    cond_channels: int = 0  # 0: blind (the models embedded before conditioning); else flowprior.conditioning.CHANNELS
    unshuffle: int = 1
    arch: str = "timeunet"  # "timeunet" (group-normed, the first embedded models) or "lean" (LeanUNet)
    top_width: int = 0  # LeanUNet's full-resolution branch (0 = none: every model embedded up to session 5)
    # per-sample loss weight (error + loss_floor)^-loss_balance (learned.balance_weights); 0 = plain MSE
    loss_balance: float = 0.0
    loss_floor: float = 1.5e-5

    def __post_init__(self):
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {sorted(ARCHITECTURES)}, not {self.arch!r}")
        if self.top_width and (self.arch != "lean" or self.unshuffle < 2):
            raise ValueError("top_width needs arch 'lean' with unshuffle >= 2")
        if not 0 <= self.loss_balance <= 1 or self.loss_floor <= 0:
            raise ValueError("loss_balance must lie in [0, 1] and loss_floor be > 0")

    def unet(self, in_channels: int = 3, aux_channels: int = 0, out_channels: int = 3) -> nn.Module:
        """A network of this size and architecture (3 outputs: a velocity or displacement of the image)."""
        config = UNetConfig(in_channels=in_channels, out_channels=out_channels, aux_channels=aux_channels,
                            cond_channels=self.cond_channels, unshuffle=self.unshuffle, width=self.width,
                            depth=self.depth, blocks=self.blocks, max_mult=self.max_mult, time_dim=self.time_dim,
                            top_width=self.top_width)
        return ARCHITECTURES[self.arch](config)
