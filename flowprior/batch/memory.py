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

#: Resident bytes per image pixel of the whole-image path (a warm start that needs the whole image: masks, learned
#: warm starts): the float32 image, its warm start, the mask and the fill's temporaries. Measured on the code before
#: streaming (docs/batch.md, "Memory"), which also held all tiles and a float64 merge, so it is an upper bound now.
BYTES_PER_PIXEL = 200

#: Peak bytes per pixel a learned warm-start network adds while it runs (its activations; no autograd): the growth
#: of peak RSS running the embedded IR-Flow on 256x256 and 448x448 inputs was 1.56 and 1.67 KB a pixel (1.93 KB on
#: a 448x448 pass in a fresh process). Large images run in blocks
#: (:meth:`flowprior.warmstart.LearnedInitializer.pixels_at_once`), so this term is bounded. When the warm start
#: runs band by band, its passes alternate with solver steps and the heap does not give all of it back in between:
#: a 1200x900 scan at --max-memory 1GiB peaked at 1149 MB where 1.7 KB/px estimated 1068 MB, so 3000 is counted.
NETWORK_BYTES_PER_PIXEL = 3000

#: Resident bytes per pixel of the padded rows the chunk being solved spans, on the streamed path: the float32
#: band of the observation and of its warm start with their padded copies, the float64 conversions of decoded rows
#: (and YCbCr for luminance restoration), the restored tiles of the unfinished tile row, the float64 blend
#: accumulator and the rows being written back (measured, docs/batch.md).
BAND_BYTES_PER_PIXEL = 128

#: Resident bytes per pixel of the rows a banded learned warm start holds (:mod:`flowprior.warm_bands`): its
#: float32 RGB block rows (12) and the float32 observation rows of the block row being computed (12).
WARM_BAND_BYTES_PER_PIXEL = 24

#: Bytes that do not grow with the image: the encoders' blocks of rows (1 MiB of samples, ~20 working copies), the
#: mean-chroma blocks, small buffers.
FIXED_BYTES = 64 * 1024**2


@dataclass(frozen=True)
class ImageBuffers:
    """Bytes per pixel of the whole-image arrays of one file (:func:`image_buffers` fills them in).

    Attributes:
        decode: transient while the file is read, beyond ``input``: its bytes and the decoder's image.
        input: the decoded samples, kept until the output is written.
        output: the output samples (the final dtype), filled band by band; on disk when they do not fit.
        review: the 8-bit restoration kept for ``--compare`` when the output is 16-bit.
        encode: transient while the output is encoded by Pillow (JPEG, WebP, 8-bit and gray TIFF): its copy of the
            image and the encoded bytes. PNG and 16-bit colour TIFF are encoded a block of rows at a time (0).
        streamed: the float tensors exist a band at a time (:func:`flowprior.restoration.streams`).
    """

    decode: float = 7.0
    input: float = 3.0
    output: float = 3.0
    review: float = 0.0
    encode: float = 0.0
    streamed: bool = True


def image_buffers(channels: int = 3, alpha: bool = False, bit_depth: int = 8, output_format: str = ".png",
                  compare: bool = False, streamed: bool = True) -> ImageBuffers:
    """The :class:`ImageBuffers` of a file with ``channels`` colour channels (+ ``alpha``) of ``bit_depth`` bits,
    written to ``output_format`` (a suffix) — what ``restore_file`` holds for it."""
    from flowprior.io import output_format as format_of

    fmt = format_of("x" + output_format)
    sample = bit_depth // 8
    out_sample = sample if bit_depth in fmt.bit_depths else 1
    out_channels = channels + (alpha and fmt.alpha)
    decoder = channels * sample if bit_depth == 16 and channels > 1 else (4 if channels > 1 or alpha else sample)
    streamed_encoder = fmt.name == "PNG" or (fmt.name == "TIFF" and out_sample == 2 and out_channels > 1)
    return ImageBuffers(
        decode=(channels + alpha) * sample + decoder,  # the file's bytes (at most the samples) + the decoded image
        input=(channels + alpha) * sample,
        output=out_channels * out_sample,
        review=channels if compare and out_sample == 2 else 0,
        encode=0 if streamed_encoder else 4 + 3 * out_channels * out_sample,
        streamed=streamed,
    )


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


def estimate(height: int, width: int, recipe, patch: int, cost: TileCost, baseline: int, max_tiles: int,
             buffers: ImageBuffers | None = None, output_on_disk: bool = False) -> dict[str, Any]:
    """Estimated peak RSS of restoring one ``height`` x ``width`` file with ``max_tiles`` tiles solved at once.

    Returns:
        ``baseline``, ``image_bytes`` (whole-image arrays held while solving), ``network_bytes`` (a learned warm
        start's activations), ``band_bytes``, ``bytes_per_tile``,
        ``max_tiles``, ``read_bytes``, ``write_bytes``, ``output`` (``memory`` or ``disk``), ``streamed``,
        ``estimated_peak`` (bytes; module docstring).
    """
    buffers = buffers or ImageBuffers()
    pixels = height * width
    output = 0 if output_on_disk else buffers.output
    held = (buffers.input + output + buffers.review) * pixels
    band = 0
    network = _network_bytes(height, width, recipe)
    banded = buffers.streamed and network and _banded(recipe, height, width)
    if buffers.streamed and (not network or banded):
        grid = _grid(height, width, recipe, patch)
        band_rows = (-(-max_tiles // len(grid.xs)) + 2) * patch
        band = band_rows * grid.padded_width * BAND_BYTES_PER_PIXEL
        if banded:  # the warm start's block rows live beside the band, and its network runs during the solve
            band += _warm_band_rows(band_rows) * grid.padded_width * WARM_BAND_BYTES_PER_PIXEL + network
    else:
        held += BYTES_PER_PIXEL * pixels
    read = (buffers.decode + buffers.input) * pixels
    warm = held + network + FIXED_BYTES if network and not banded else 0
    write = (buffers.input + output + buffers.review + buffers.encode) * pixels + FIXED_BYTES
    solve = held + band + max_tiles * cost.bytes_per_tile + FIXED_BYTES
    return {
        "baseline": int(baseline),
        "image_bytes": int(held),
        "network_bytes": int(network),
        "band_bytes": int(band),
        "bytes_per_tile": cost.bytes_per_tile,
        "max_tiles": int(max_tiles),
        "read_bytes": int(read),
        "write_bytes": int(write),
        "output": "disk" if output_on_disk else "memory",
        "streamed": buffers.streamed,
        "estimated_peak": int(baseline + max(read, warm, solve, write)),
    }


def _banded(recipe, height: int, width: int) -> bool:
    from flowprior.warm_bands import can_band

    return can_band(recipe.init, height, width)


def _warm_band_rows(band_rows: int) -> int:
    """Rows of a banded warm start held at once: the block rows the band spans (up to one more block row than the
    band) and the observation rows of the block row being computed (a block and two halos)."""
    from flowprior.warmstart import LearnedInitializer as Learned

    return band_rows + 2 * (Learned.block + 2 * Learned.halo)


def _network_bytes(height: int, width: int, recipe) -> int:
    """Activation bytes of the learned warm-start network on this image (0 for other initializers)."""
    from flowprior.warmstart import LearnedInitializer
    from flowprior.warmstart.learned import is_learned

    if not is_learned(recipe.init):
        return 0
    return NETWORK_BYTES_PER_PIXEL * LearnedInitializer.pixels_at_once(height, width)


def _grid(height: int, width: int, recipe, patch: int) -> tiling.TileGrid:
    from degradations import parse

    try:
        align = parse(recipe.degradation, recipe.params).block_size()
    except ValueError:
        align = 1
    return tiling.make_grid(height, width, tile=patch, overlap=recipe.tiling.overlap, align=align)


def tile_count(height: int, width: int, recipe, patch: int) -> int:
    """Tiles the solver cuts an image of this size into (origins aligned to the degradation's blocks)."""
    return _grid(height, width, recipe, patch).num_tiles


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
        raise UsageError(
            f"restoring {height}x{width} needs about {format_size(need['estimated_peak'])} (process "
            f"{format_size(baseline)} + image buffers {format_size(need['image_bytes'])} + one tile, or "
            f"{format_size(need['read_bytes'])} to read it{network}); --max-memory is {format_size(budget)}"
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
