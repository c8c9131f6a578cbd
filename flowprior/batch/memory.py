"""Memory and time estimates: ``peak = baseline RSS + BYTES_PER_PIXEL * H * W + max_tiles * per-tile cost``.

The per-tile cost is measured on the loaded model (:func:`measure_tile_cost`); the whole-image term is a constant
measured on this code (see :data:`BYTES_PER_PIXEL`). Time: ``tiles * steps * seconds per tile-step``, the last
measured the same way. :func:`parse_size` reads ``--max-memory``.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from flowprior import tiling
from flowprior.errors import UsageError

#: Resident bytes per image pixel while one image is restored, beyond the tiles being solved: the float32 image,
#: its warm start, their tiles, the restored tiles, the float64 merge and the 8/16-bit encode (measured:
#: docs/batch.md, "Memory"). Gray images are solved as RGB, so this does not depend on the channels.
BYTES_PER_PIXEL = 200


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
    """Peak resident set size of this process so far, in bytes."""
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


def tile_count(height: int, width: int, recipe, patch: int) -> int:
    """Tiles the solver cuts an image of this size into (origins aligned to the degradation's blocks)."""
    from degradations import parse

    try:
        align = parse(recipe.degradation, recipe.params).block_size()
    except ValueError:
        align = 1
    return tiling.make_grid(height, width, tile=patch, overlap=recipe.tiling.overlap, align=align).num_tiles


def plan_memory(
    height: int, width: int, recipe, patch: int, cost: TileCost, budget: int, baseline: int | None = None
) -> dict[str, int]:
    """Pick ``tiling.max_tiles`` so that the estimated peak RSS stays within ``budget`` bytes.

    Returns:
        ``budget``, ``baseline``, ``image_bytes``, ``bytes_per_tile``, ``max_tiles``, ``estimated_peak`` (bytes).

    Raises:
        UsageError: the image's own buffers alone exceed the budget.
    """
    baseline = current_rss() if baseline is None else baseline
    tiles = tile_count(height, width, recipe, patch)
    image_bytes = BYTES_PER_PIXEL * height * width
    room = budget - baseline - image_bytes
    if room < cost.bytes_per_tile:
        need = baseline + image_bytes + cost.bytes_per_tile
        raise UsageError(
            f"restoring {height}x{width} needs about {format_size(need)} (process {format_size(baseline)}"
            f" + image buffers {format_size(image_bytes)} + one tile); --max-memory is {format_size(budget)}"
        )
    max_tiles = min(tiles, room // cost.bytes_per_tile, recipe.tiling.max_tiles or tiles)
    return {
        "budget": budget,
        "baseline": baseline,
        "image_bytes": image_bytes,
        "bytes_per_tile": cost.bytes_per_tile,
        "max_tiles": int(max_tiles),
        "estimated_peak": int(baseline + image_bytes + max_tiles * cost.bytes_per_tile),
    }


def memory_planner(budget: int, cost: TileCost | None = None) -> Callable[..., dict[str, int]]:
    """A ``planner(height, width, recipe, prior)`` for ``restore_file``: :func:`plan_memory` under ``budget`` bytes.

    The baseline RSS is taken now, before any image is read (image buffers are the ``BYTES_PER_PIXEL`` term);
    the per-tile cost is ``cost`` or measured on the first call.
    """
    state: dict[str, Any] = {"cost": cost, "baseline": current_rss()}

    def planner(height: int, width: int, recipe, prior) -> dict[str, int]:
        if state["cost"] is None:
            state["cost"] = measure_tile_cost(prior, recipe)
        return plan_memory(height, width, recipe, prior.patch_size, state["cost"], budget, state["baseline"])

    return planner


_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1000**4,
    "tib": 1024**4,
}


def parse_size(text: str) -> int:
    """``"4GiB"`` -> 4294967296. Units B, KB/MB/GB/TB (powers of 1000), KiB/MiB/GiB/TiB and K/M/G/T (of 1024)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    if not match or match.group(2).lower() not in _UNITS:
        raise UsageError(f"cannot read the size {text!r}; write e.g. 4GiB, 512MiB or 6GB")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def format_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
