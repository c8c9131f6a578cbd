"""Memory and time estimates (docs/batch.md, "Memory and time").

A file is restored in up to four phases, and the peak is the baseline RSS plus the largest of them
(:func:`estimate`)::

    read  = (decode + input) * H * W
    warm  = held + NETWORK_BYTES_PER_PIXEL * pixels the network takes at once + FIXED_BYTES   (learned warm starts)
    solve = held + band(max_tiles) + max_tiles * bytes_per_tile + FIXED_BYTES
    write = (input + output + review + encode) * H * W + FIXED_BYTES

where ``held = (input + output + review) * H * W`` (+ ``BYTES_PER_PIXEL * H * W`` on the whole-image path). A
deterministic learned warm start on a large image without holes runs band by band during the solve
(:mod:`flowprior.warm_bands`): its network and block rows are then part of ``band`` and there is no ``warm`` phase.

``input``, ``output``, ... are bytes per pixel of the whole-image arrays, which hold samples of the final dtype
(:class:`ImageBuffers`, from the file's channels and bit depth and the output format); the float tensors exist only
for the band of tile rows being solved (``band``, :data:`BAND_BYTES_PER_PIXEL`). When the warm start needs the
whole image (holes to fill, learned warm starts) the solve holds :data:`BYTES_PER_PIXEL` per pixel instead.
The per-tile cost is measured on the loaded model (:func:`measure_tile_cost`). Time: ``tiles * steps * seconds per
tile-step``, the last measured the same way. :func:`parse_size` reads ``--max-memory``.

Modules: ``peak`` (the phases and :func:`estimate`), ``planner`` (:func:`plan_memory`, :func:`memory_planner`),
``measure`` (RSS, :func:`measure_tile_cost`), ``sizes`` (:func:`parse_size`, :func:`format_size`).
"""

from flowprior.batch.memory.measure import TileCost, current_rss, measure_tile_cost, peak_rss
from flowprior.batch.memory.peak import (
    BAND_BYTES_PER_PIXEL,
    BYTES_PER_PIXEL,
    FIXED_BYTES,
    NETWORK_BYTES_PER_PIXEL,
    WARM_BAND_BYTES_PER_PIXEL,
    ImageBuffers,
    estimate,
    image_buffers,
    tile_count,
)
from flowprior.batch.memory.planner import (
    DEFAULT_BUDGET_NOTE,
    check_fixed_plan,
    default_budget,
    memory_planner,
    plan_memory,
)
from flowprior.batch.memory.sizes import format_size, parse_size

__all__ = [
    "BAND_BYTES_PER_PIXEL", "BYTES_PER_PIXEL", "DEFAULT_BUDGET_NOTE", "FIXED_BYTES", "NETWORK_BYTES_PER_PIXEL",
    "WARM_BAND_BYTES_PER_PIXEL", "ImageBuffers", "TileCost", "check_fixed_plan", "current_rss", "default_budget",
    "estimate", "format_size", "image_buffers", "measure_tile_cost", "memory_planner", "parse_size", "peak_rss",
    "plan_memory", "tile_count",
]
