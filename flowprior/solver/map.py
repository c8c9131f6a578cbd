"""Coarse-to-fine latent MAP (Helminger et al. §3.3) with per-tile NaN rollback.

The optimizer is Adam written out here rather than ``torch.optim.Adam`` because every tile needs its own step
size: a tile whose energy turns NaN/inf is rolled back to its last finite iterate, its moments are reset and its
step is halved, while the other tiles go on untouched. No NaN ever reaches the output.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from flowprior.prior.base import Prior
from flowprior.solver.objective import Energy, energy_and_grad
from flowprior.solver.schedule import Stage

OPTIMIZERS = ("adam", "lbfgs")


def finite_tiles(image: Tensor, observed: Tensor | None) -> Tensor:
    """``image`` (B, C, P, P) made safe to output, in place: a tile with a non-finite value becomes its
    ``observed`` tile (when there is one on the same grid), any NaN left 0.5, all clamped to [0, 1]."""
    bad = ~torch.isfinite(image).flatten(1).all(1)
    if bad.any() and observed is not None:
        image[bad] = observed[bad].to(image.dtype)
    return torch.nan_to_num(image, nan=0.5).clamp(0, 1)


@dataclass
class SolveResult:
    """Output of :meth:`LatentMAPSolver.solve`.

    Attributes:
        image: (B, C, P, P) decoded restoration, finite, clamped to [0, 1].
        latents: the last finite iterate of every tile, finest first.
        stage_energies: per stage, the mean tile energy at its start and end.
        rollbacks: number of tile-steps rolled back because the energy was not finite.
        seconds: wall time.
    """

    image: Tensor
    latents: list[Tensor]
    stage_energies: list[dict[str, float]] = field(default_factory=list)
    rollbacks: int = 0
    seconds: float = 0.0


def _per_tile(values: Tensor, like: Tensor) -> Tensor:
    return values.reshape((-1,) + (1,) * (like.ndim - 1))


class _TileAdam:
    """Adam over a list of latents with a separate step size per tile (first dimension)."""

    def __init__(self, tensors: list[Tensor], lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.tensors = tensors
        self.lr = torch.full((tensors[0].shape[0],), float(lr), dtype=tensors[0].dtype)
        self.scale = 1.0  # the stage's step-size schedule, on top of each tile's own (rollback-halved) step
        self.betas, self.eps = betas, eps
        self.m = [torch.zeros_like(t) for t in tensors]
        self.v = [torch.zeros_like(t) for t in tensors]
        self.t = torch.zeros(tensors[0].shape[0], dtype=tensors[0].dtype)

    @torch.no_grad()
    def step(self, grads: list[Tensor], live: Tensor) -> None:
        """One update for the tiles where ``live`` is True; the others are left exactly as they are."""
        beta1, beta2 = self.betas
        self.t = self.t + live.to(self.t.dtype)
        correction1 = 1 - beta1 ** self.t.clamp(min=1)
        correction2 = 1 - beta2 ** self.t.clamp(min=1)
        for x, g, m, v in zip(self.tensors, grads, self.m, self.v):
            keep = _per_tile(live, x)
            m.copy_(torch.where(keep, beta1 * m + (1 - beta1) * g, m))
            v.copy_(torch.where(keep, beta2 * v + (1 - beta2) * g * g, v))
            update = _per_tile(self.scale * self.lr / correction1, x) * m / ((v / _per_tile(correction2, x)).sqrt() + self.eps)
            x.sub_(torch.where(keep, update, torch.zeros_like(update)))

    def reset(self, tiles: Tensor) -> None:
        """Forget the moments of the given tiles (boolean (B,)) and halve their step."""
        for m, v in zip(self.m, self.v):
            m[tiles] = 0
            v[tiles] = 0
        self.t[tiles] = 0
        self.lr[tiles] *= 0.5


class LatentMAPSolver:
    """Minimize the per-tile :class:`Energy` over the prior's latents, coarse to fine.

    Args:
        prior: a trained flow prior (its weights are not changed).
        optimizer: ``"adam"`` (the paper's) or ``"lbfgs"`` (all tiles in one L-BFGS; rollback is global).
        progress: called with the number of tile-steps done after each step (for a progress bar).

    Example:
        >>> from flowprior.prior.glow import Glow, GlowConfig
        >>> prior = Glow(GlowConfig(levels=2, steps=1, width=4, patch_size=8)).eval()
        >>> y = torch.rand(2, 3, 8, 8)
        >>> energy = Energy(observed=y, mask=None, forward=None, weight=10.0)
        >>> z0 = [torch.zeros(s) for s in prior.latent_shapes(2, 8, 8)]
        >>> out = LatentMAPSolver(prior).solve(energy, z0, [Stage(active=2, steps=3, lr=0.1)])
        >>> out.image.shape
        torch.Size([2, 3, 8, 8])
    """

    def __init__(self, prior: Prior, optimizer: str = "adam", progress: Callable[[int], None] | None = None):
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, not {optimizer!r}")
        self.prior = prior
        self.optimizer = optimizer
        self.progress = progress

    def solve(self, energy: Energy, init: list[Tensor], stages: list[Stage]) -> SolveResult:
        started = time.perf_counter()
        levels = len(init)
        z = [zi.detach().clone() for zi in init]  # never touch the caller's tensors
        last_finite_z = [zi.clone() for zi in z]
        result = SolveResult(image=torch.empty(0), latents=z)
        for stage in stages:
            if stage.active > levels:
                raise ValueError(f"stage frees {stage.active} levels but the prior has {levels}")
            free = list(range(levels - stage.active, levels))  # coarsest `active` levels
            run = self._run_lbfgs if self.optimizer == "lbfgs" else self._run_adam
            first, last, rollbacks = run(energy, z, last_finite_z, free, stage)
            result.rollbacks += rollbacks
            result.stage_energies.append({"active": stage.active, "steps": stage.steps, "start": first, "end": last})
        with torch.no_grad():
            image = self.prior.decode(last_finite_z)
        # even the last finite iterate of a tile may decode badly: it falls back to its observation
        result.image = finite_tiles(image, energy.observed)
        result.latents = last_finite_z
        result.seconds = time.perf_counter() - started
        return result

    def _run_adam(self, energy: Energy, z: list[Tensor], last_finite_z: list[Tensor], free: list[int], stage: Stage):
        variables = [z[i] for i in free]
        optimizer = _TileAdam(variables, stage.lr)
        tiles = z[0].shape[0]
        first = last = float("nan")
        rollbacks = 0
        for step in range(stage.steps + 1):
            values, grads, _ = energy_and_grad(energy, self.prior, z, free, stage.prior_weight)
            finite = torch.isfinite(values)
            for g in grads:
                finite &= torch.isfinite(g).flatten(1).all(1)
            with torch.no_grad():
                for i in range(len(z)):  # remember the last finite iterate of every tile
                    last_finite_z[i][finite] = z[i][finite]
                if not finite.all():
                    broken = ~finite
                    rollbacks += int(broken.sum())
                    for i in range(len(z)):
                        z[i][broken] = last_finite_z[i][broken]
                    optimizer.reset(broken)
            mean = float(values[finite].mean()) if finite.any() else float("nan")
            if step == 0:
                first = mean
            last = mean
            if step == stage.steps:
                break
            optimizer.scale = stage.lr_at(step) / stage.lr
            optimizer.step(grads, finite)
            if self.progress:
                self.progress(tiles)
        return first, last, rollbacks

    def _run_lbfgs(self, energy: Energy, z: list[Tensor], last_finite_z: list[Tensor], free: list[int], stage: Stage):
        variables = [z[i].requires_grad_(True) for i in free]
        optimizer = torch.optim.LBFGS(variables, lr=stage.lr, max_iter=1, line_search_fn="strong_wolfe")
        record = {"first": float("nan"), "last": float("nan")}
        rollbacks = 0

        def closure():
            optimizer.zero_grad()
            values, _ = energy(self.prior, z, stage.prior_weight)
            total = values.sum()
            if torch.isfinite(total):
                total.backward()
            return total

        for step in range(stage.steps):
            loss = optimizer.step(closure)
            finite = torch.isfinite(loss) and all(torch.isfinite(v).all() for v in variables)
            with torch.no_grad():
                if finite:
                    for i in range(len(z)):
                        last_finite_z[i].copy_(z[i])
                    record["last"] = float(loss) / z[0].shape[0]
                    if step == 0:
                        record["first"] = record["last"]
                else:  # L-BFGS couples tiles through its line search, so a rollback is global
                    rollbacks += z[0].shape[0]
                    for i in range(len(z)):
                        z[i].copy_(last_finite_z[i])
                    optimizer = torch.optim.LBFGS(variables, lr=optimizer.defaults["lr"] * 0.5, max_iter=1,
                                                  line_search_fn="strong_wolfe")
            if self.progress:
                self.progress(z[0].shape[0])
        for v in variables:
            v.requires_grad_(False)
        return record["first"], record["last"], rollbacks
