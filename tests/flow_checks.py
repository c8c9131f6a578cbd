"""One shared helper set for flow tests: round trip, brute-force log-determinant, random non-trivial weights."""

from __future__ import annotations

import torch


def randomize(module: torch.nn.Module, scale: float = 0.05, seed: int = 0) -> torch.nn.Module:
    """Perturb every parameter so zero-initialized layers are no longer the identity."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return module


def assert_round_trip(layer, x: torch.Tensor, tol: float) -> None:
    """``reverse(forward(x)) == x`` and both directions report the same log-determinant."""
    with torch.no_grad():
        y, logdet_forward = layer(x)
        x_back, logdet_reverse = layer.reverse(y)
    assert (x_back - x).abs().max().item() < tol
    assert (logdet_forward - logdet_reverse).abs().max().item() < tol * max(1.0, logdet_forward.abs().max().item())


def brute_force_logdet(function, x: torch.Tensor) -> torch.Tensor:
    """log|det J| of ``function`` at a single input (1, C, H, W), from the full Jacobian in float64."""
    def flat(v):
        return function(v.reshape(x.shape)).reshape(-1)

    jacobian = torch.autograd.functional.jacobian(flat, x.reshape(-1))
    return torch.linalg.slogdet(jacobian)[1]
