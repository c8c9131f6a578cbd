"""Invertible layers of the Glow flow (Kingma & Dhariwal 2018), written for MAP restoration.

Every layer maps in the *encode* direction (image -> latent) with ``forward(x) -> (y, logdet)`` and back with
``reverse(y) -> (x, logdet)``, where both return the log-determinant of the **encode** direction evaluated at the
same point (so a decoder accumulates ``-logdet``). Log-determinants are per sample, shape (B,).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def squeeze2d(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, 4C, H/2, W/2): each 2x2 spatial block becomes 4 channels."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // 2, 2, w // 2, 2)
    return x.permute(0, 1, 3, 5, 2, 4).reshape(b, c * 4, h // 2, w // 2)


def unsqueeze2d(x: Tensor) -> Tensor:
    """Inverse of :func:`squeeze2d`."""
    b, c, h, w = x.shape
    x = x.reshape(b, c // 4, 2, 2, h, w)
    return x.permute(0, 1, 4, 2, 5, 3).reshape(b, c // 4, h * 2, w * 2)


class ActNorm(nn.Module):
    """Per-channel affine map ``y = (x + bias) * exp(logs)`` with data-dependent initialization.

    The first encode in training mode sets bias and scale so the batch comes out zero-mean, unit-variance. The
    ``initialized`` flag is a buffer, so it travels in the state dict and a loaded model never re-initializes.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.logs = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(0, dtype=torch.uint8))

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True)
        self.bias.copy_(-mean)
        self.logs.copy_(-torch.log(std + 1e-6))
        self.initialized.fill_(1)

    def _logdet(self, x: Tensor) -> Tensor:
        return (self.logs.sum() * x.shape[2] * x.shape[3]).expand(x.shape[0])

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.training and not bool(self.initialized):
            self.initialize(x)
        return (x + self.bias) * torch.exp(self.logs), self._logdet(x)

    def reverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return y * torch.exp(-self.logs) - self.bias, self._logdet(y)


class InvConv1x1(nn.Module):
    """Invertible 1x1 convolution with an LU-parametrized weight ``W = P L (U + diag(sign * exp(log_s)))``.

    The weight, its inverse and its log-determinant are formed in float64 (a float32 inverse drifts by ~1e-5 per
    layer, which the solver's gradient would then chase). The inverse is cached for decoding and recomputed only when
    a parameter changes.
    """

    def __init__(self, channels: int, generator: torch.Generator | None = None):
        super().__init__()
        q, _ = torch.linalg.qr(torch.randn(channels, channels, generator=generator, dtype=torch.float64))
        p, lower, upper = torch.linalg.lu(q)
        diag = torch.diagonal(upper)
        self.register_buffer("perm", p.float())
        self.register_buffer("sign_s", torch.sign(diag).float())
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.lower = nn.Parameter(lower.float())
        self.upper = nn.Parameter(torch.triu(upper, 1).float())
        self.log_s = nn.Parameter(torch.log(diag.abs()).float())
        self._inverse_cache: tuple[tuple, Tensor] | None = None

    def weight64(self) -> Tensor:
        eye = torch.eye(self.perm.shape[0], dtype=torch.float64, device=self.perm.device)
        lower = self.lower.double() * self.lower_mask.double() + eye
        upper = self.upper.double() * self.lower_mask.T.double() + torch.diag(self.sign_s.double() * torch.exp(self.log_s.double()))
        return self.perm.double() @ lower @ upper

    def _inverse(self) -> Tensor:
        if torch.is_grad_enabled() and self.lower.requires_grad:
            return torch.linalg.inv(self.weight64())  # training through the decoder needs the inverse's graph
        key = (self.lower._version, self.upper._version, self.log_s._version, self.lower.data_ptr(), self.lower.device)
        if self._inverse_cache is None or self._inverse_cache[0] != key:
            with torch.no_grad():
                self._inverse_cache = (key, torch.linalg.inv(self.weight64()))
        return self._inverse_cache[1]

    def _logdet(self, x: Tensor) -> Tensor:
        return (self.log_s.sum() * x.shape[2] * x.shape[3]).expand(x.shape[0])

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        weight = self.weight64().to(x.dtype)
        return F.conv2d(x, weight[:, :, None, None]), self._logdet(x)

    def reverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        inverse = self._inverse().to(y.dtype)
        return F.conv2d(y, inverse[:, :, None, None]), self._logdet(y)


class ZeroConv2d(nn.Module):
    """3x3 convolution initialized to output zero, with a learned per-channel gain ``exp(3 * logs)``.

    Zero output at initialization makes every coupling start as the identity and every conditional prior start as
    N(0, I), which is what lets deep flows train stably.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)
        self.logs = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x) * torch.exp(3 * self.logs)


class CouplingNet(nn.Module):
    """The coupling's "context encoder": ``depth`` ReLU conv layers (a 3x3, then 1x1s) + a zero-initialized 3x3.

    This is Glow's 3x3 -> 1x1 -> 3x3 shape for ``depth = 2``; the 1x1 layers keep deeper encoders cheap on a CPU.
    """

    def __init__(self, in_channels: int, out_channels: int, width: int, depth: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU()]
        for _ in range(1, depth):
            layers += [nn.Conv2d(width, width, 1), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.out = ZeroConv2d(width, out_channels)
        # a training-time switch (not a parameter, not saved): run the hidden layers in bfloat16
        self.bf16_body = False

    def forward(self, x: Tensor) -> Tensor:
        if not self.bf16_body:
            return self.out(self.body(x))
        # Only the hidden layers, the bulk of the cost: the zero conv that sets shift and scale, and so the
        # log-determinant, stays float32, as do the invertible layers outside this network.
        with torch.autocast("cpu", dtype=torch.bfloat16):
            hidden = self.body(x)
        return self.out(hidden.float())


def set_coupling_precision(model: nn.Module, precision: str) -> None:
    """Run every coupling network's hidden layers of ``model`` in ``"bf16"`` or ``"fp32"`` (the default)."""
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16', not {precision!r}")
    for module in model.modules():
        if isinstance(module, CouplingNet):
            module.bf16_body = precision == "bf16"


@contextmanager
def full_precision(model: nn.Module):
    """Every coupling network of ``model`` in float32 inside the block (validation), as it was after it."""
    nets = [module for module in model.modules() if isinstance(module, CouplingNet)]
    before = [net.bf16_body for net in nets]
    for net in nets:
        net.bf16_body = False
    try:
        yield model
    finally:
        for net, flag in zip(nets, before):
            net.bf16_body = flag


class AffineCoupling(nn.Module):
    """Affine coupling ``y_b = (x_b + t(x_a)) * s(x_a)``, ``s = floor + (1 - floor) * sigmoid(h + 2)``.

    The sigmoid keeps the encode-direction scale in (floor, 1): decoding can amplify by at most ``1 / floor`` per
    layer. Without the floor, encoding out-of-distribution inputs (noisy, JPEG'd, masked images) drove scales to
    ~1e-17 and the solver's first step to NaN.
    """

    def __init__(self, channels: int, width: int, depth: int, scale_floor: float = 0.01):
        super().__init__()
        self.split = channels // 2
        self.scale_floor = scale_floor
        self.net = CouplingNet(self.split, 2 * (channels - self.split), width, depth)

    def _shift_scale(self, xa: Tensor) -> tuple[Tensor, Tensor]:
        h = self.net(xa)
        shift, raw = h[:, 0::2], h[:, 1::2]
        scale = self.scale_floor + (1 - self.scale_floor) * torch.sigmoid(raw + 2.0)
        return shift, scale

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        xa, xb = x[:, : self.split], x[:, self.split :]
        shift, scale = self._shift_scale(xa)
        yb = (xb + shift) * scale
        return torch.cat([xa, yb], 1), torch.log(scale).flatten(1).sum(1)

    def reverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        ya, yb = y[:, : self.split], y[:, self.split :]
        shift, scale = self._shift_scale(ya)
        xb = yb / scale - shift
        return torch.cat([ya, xb], 1), torch.log(scale).flatten(1).sum(1)


class FlowStep(nn.Module):
    """One Glow step: ActNorm -> invertible 1x1 conv -> affine coupling."""

    def __init__(self, channels: int, width: int, depth: int, scale_floor: float, generator=None):
        super().__init__()
        self.layers = nn.ModuleList(
            [ActNorm(channels), InvConv1x1(channels, generator), AffineCoupling(channels, width, depth, scale_floor)]
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logdet = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, ld = layer(x)
            logdet = logdet + ld
        return x, logdet

    def reverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        logdet = y.new_zeros(y.shape[0])
        for layer in reversed(self.layers):
            y, ld = layer.reverse(y)
            logdet = logdet + ld
        return y, logdet
