"""Choosing how many tiles to solve at once (and where the output samples live) so the estimated peak fits a
memory budget: :func:`plan_memory`, and :func:`memory_planner`, the planner ``restore_file`` calls."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from flowprior.batch.memory.measure import TileCost, current_rss, measure_tile_cost
from flowprior.batch.memory.peak import ImageBuffers, estimate, tile_count
from flowprior.batch.memory.sizes import format_size
from flowprior.errors import UsageError


def plan_memory(
    height: int,
    width: int,
    recipe,
    patch: int,
    cost: TileCost,
    budget: int,
    baseline: int | None = None,
    buffers: ImageBuffers | None = None,
) -> dict[str, Any]:
    """Pick ``tiling.max_tiles`` (and where the output samples live) so that the estimated peak stays in ``budget``.

    The most tiles whose solve phase fits, with the output in memory; when even one tile does not fit that way,
    with the output samples in a file (:class:`flowprior.io.RowStore`).

    Returns:
        :func:`estimate`'s dict for the chosen ``max_tiles``, plus ``budget``.

    Raises:
        UsageError: the budget cannot be met even with one tile and the output on disk.
    """
    baseline = current_rss() if baseline is None else baseline
    tiles = tile_count(height, width, recipe, patch)
    cap = min(tiles, recipe.tiling.max_tiles or tiles)
    plan = None
    for on_disk in (False, True):
        one = estimate(height, width, recipe, patch, cost, baseline, 1, buffers, on_disk)
        if one["estimated_peak"] > budget:
            continue
        low, high = 1, cap  # the estimate grows with max_tiles: the largest that fits
        while low < high:
            mid = (low + high + 1) // 2
            peak = estimate(height, width, recipe, patch, cost, baseline, mid, buffers, on_disk)["estimated_peak"]
            low, high = (mid, high) if peak <= budget else (low, mid - 1)
        plan = estimate(height, width, recipe, patch, cost, baseline, low, buffers, on_disk)
        break
    if plan is None:
        need = estimate(height, width, recipe, patch, cost, baseline, 1, buffers, True)
        network = (f", or {format_size(need['network_bytes'])} for the warm-start network"
                   if need["network_bytes"] else "")
        chains = buffers.chains if buffers else 0
        sampled = (f", or {format_size(need['sample_bytes'])} to sample {chains} chains of a tile at once "
                   "(--samples N with posterior.start=laplace; fewer samples or posterior.start=map need less)"
                   if chains > 1 else "")
        raise UsageError(
            f"restoring {height}x{width} needs about {format_size(need['estimated_peak'])} (process "
            f"{format_size(baseline)} + image buffers {format_size(need['image_bytes'])} + one tile, or "
            f"{format_size(need['read_bytes'])} to read it{network}{sampled}); --max-memory is {format_size(budget)}"
        )
    return {"budget": budget, **plan}


#: the ``budget_from`` of a plan without ``--max-memory``
DEFAULT_BUDGET_NOTE = "default: half the available memory"


def default_budget() -> int:
    """The memory bound without ``--max-memory``: half the memory available now (Linux ``MemAvailable``), else half
    the physical memory, else 4 GiB."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (OSError, ValueError, AttributeError):
        return 4 * 1024**3


def memory_planner(budget: int | None = None, cost: TileCost | None = None) -> Callable[..., dict[str, Any]]:
    """A ``planner(height, width, recipe, prior, buffers=None, fixed=False)`` for ``restore_file``:
    :func:`plan_memory` under ``budget`` bytes (None: :func:`default_budget`, and ``planner.default`` is True).

    The baseline RSS is taken now, before any image is read (image buffers are the ``buffers`` terms);
    the per-tile cost is ``cost`` or measured on the first call. ``fixed``: keep ``recipe.tiling.max_tiles`` (a
    replay) and only check that its estimate fits. The plan says where the budget came from (``budget_from``).
    """
    state: dict[str, Any] = {"cost": cost, "baseline": current_rss()}
    source = "--max-memory" if budget is not None else DEFAULT_BUDGET_NOTE
    budget = default_budget() if budget is None else budget

    def planner(height: int, width: int, recipe, prior, buffers: ImageBuffers | None = None,
                fixed: bool = False) -> dict[str, Any]:
        if state["cost"] is None:
            state["cost"] = measure_tile_cost(prior, recipe)
        args = (height, width, recipe, prior.patch_size, state["cost"])
        if fixed:
            plan = check_fixed_plan(*args, budget, state["baseline"], buffers)
        else:
            plan = plan_memory(*args, budget, state["baseline"], buffers)
        return {**plan, "budget_from": source}

    planner.default, planner.budget = source == DEFAULT_BUDGET_NOTE, budget
    return planner


def check_fixed_plan(height: int, width: int, recipe, patch: int, cost: TileCost, budget: int, baseline: int,
                     buffers: ImageBuffers | None = None) -> dict[str, Any]:
    """:func:`estimate` at the recipe's own ``max_tiles`` (None: all tiles), which a replay must keep to give the
    same bytes; UsageError when it does not fit ``budget``."""
    tiles = tile_count(height, width, recipe, patch)
    at_once = min(tiles, recipe.tiling.max_tiles or tiles)
    plan = estimate(height, width, recipe, patch, cost, baseline, at_once, buffers)
    if plan["estimated_peak"] > budget:
        raise UsageError(f"replaying {height}x{width} with {at_once} tiles at once needs about "
                         f"{format_size(plan['estimated_peak'])}; the memory bound is {format_size(budget)}")
    return {"budget": budget, **plan}
