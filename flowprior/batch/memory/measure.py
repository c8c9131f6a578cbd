"""What the memory model measures on this process and model: resident memory now and at its peak, and the
cost of one tile in one solver step (:class:`TileCost`)."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TileCost:
    """Measured cost of one tile in one solver step on the loaded model."""

    bytes_per_tile: int
    seconds_per_tile_step: float


def current_rss() -> int:
    """Resident set size of this process in bytes (Linux /proc; elsewhere the peak so far)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return peak_rss()


def peak_rss() -> int:
    """Peak resident set size of this process since it started (``getrusage``), in bytes: a high-water mark, so in a
    batch it covers every file restored so far, not only the last one."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def measure_tile_cost(prior, recipe, counts: tuple[int, int] = (2, 6)) -> TileCost:
    """Measure bytes and seconds per tile of one solver step (energy + gradient) on ``prior``.

    Bytes: the tensors autograd keeps for the backward pass (counted once per storage, model weights excluded),
    as a slope between two tile counts so fixed costs cancel, plus the solver's per-tile state (latents, best
    iterate, two Adam moments, gradient: 5 latent copies; observed, warm-start and restored tiles: 3 more). On the
    default prior this is 8.0 MB against 6.7 MB measured as the growth of peak RSS per tile, so it is a bound.
    Seconds: the second of two timed steps at the larger count.
    """
    from flowprior.solver import Energy

    patch = prior.patch_size
    weights = {t.untyped_storage().data_ptr() for t in [*prior.parameters(), *prior.buffers()]}
    saved_bytes, seconds = [], 0.0
    for n in counts:
        generator = torch.Generator().manual_seed(n)
        z = [
            (0.5 * torch.randn(s, generator=generator)).requires_grad_(True)
            for s in prior.latent_shapes(n, patch, patch)
        ]
        energy = Energy(
            observed=torch.rand(n, 3, patch, patch, generator=generator),
            mask=None,
            forward=None,
            weight=recipe.solver.weight,
            prior_term=recipe.solver.prior_term,
        )
        storages: dict[int, int] = {}

        def pack(t: torch.Tensor, storages: dict[int, int] = storages) -> torch.Tensor:
            storage = t.untyped_storage()
            if storage.data_ptr() not in weights:
                storages[storage.data_ptr()] = storage.nbytes()
            return t

        for repeat in range(2):
            started = time.perf_counter()
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                values, _ = energy(prior, z)
            torch.autograd.grad(values.sum(), z)
            seconds = (time.perf_counter() - started) / n
        saved_bytes.append(sum(storages.values()))
    activations = max(0.0, (saved_bytes[1] - saved_bytes[0]) / (counts[1] - counts[0]))
    state = 8 * 3 * patch * patch * 4
    return TileCost(int(activations + state), seconds)
