"""The estimated peak RSS of restoring one file (the phases of :mod:`flowprior.batch.memory`): the measured
bytes per pixel of each buffer, and :func:`estimate`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flowprior import tiling
from flowprior.batch.memory.measure import TileCost

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


#: Float64 copies of a row of tiles the tile blender holds at once (pending tiles, weighted, folded, accumulated):
#: the MAP's band term (BAND_BYTES_PER_PIXEL) is about this many copies of 3 channels. The posterior sampler blends
#: its mean, second moment and kept samples stacked on channels the same way (flowprior.posterior.sampling).
BLEND_COPIES = 5


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
        streamed: the float tensors exist a band at a time (:func:`flowprior.pipeline.streaming.stream_mode`).
        posterior: ``--samples``: held from the MAP until the output is written: the MAP rows (float32, the chains'
            start), the std map (16-bit) and the saved samples (output samples each); on disk with the output.
        posterior_band: ``--samples``: bytes per pixel of the padded rows the sampler's blend spans.
        chains: ``--samples``: the fewest tile chains sampled at once (the ensemble runs N chains of a tile
            together, so it needs N tiles' worth of memory even when the plan solves fewer tiles at once); 0 without.
    """

    decode: float = 7.0
    input: float = 3.0
    output: float = 3.0
    review: float = 0.0
    encode: float = 0.0
    streamed: bool = True
    posterior: float = 0.0
    posterior_band: float = 0.0
    chains: int = 0


def image_buffers(channels: int = 3, alpha: bool = False, bit_depth: int = 8, output_format: str = ".png",
                  compare: bool = False, streamed: bool = True, samples: int = 0, save_samples: bool = False,
                  chains: int = 0) -> ImageBuffers:
    """The :class:`ImageBuffers` of a file with ``channels`` colour channels (+ ``alpha``) of ``bit_depth`` bits,
    written to ``output_format`` (a suffix) — what ``restore_file`` holds for it; with ``samples`` posterior
    samples (``save_samples``: each kept as an image), ``chains`` of a tile sampled at once."""
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
        # the MAP rows (float32) + the std (16-bit) in the solver's channels, + each saved sample as output samples
        posterior=(4 + 2) * channels + save_samples * samples * out_channels * out_sample if samples else 0,
        posterior_band=BLEND_COPIES * 8 * channels * (2 + save_samples * samples) if samples else 0,
        chains=chains if samples else 0,
    )


def estimate(height: int, width: int, recipe, patch: int, cost: TileCost, baseline: int, max_tiles: int,
             buffers: ImageBuffers | None = None, output_on_disk: bool = False) -> dict[str, Any]:
    """Estimated peak RSS of restoring one ``height`` x ``width`` file with ``max_tiles`` tiles solved at once.

    Returns:
        ``baseline``, ``image_bytes`` (whole-image arrays held while solving), ``network_bytes`` (a learned warm
        start's activations), ``band_bytes``, ``bytes_per_tile``,
        ``max_tiles``, ``read_bytes``, ``write_bytes``, ``output`` (``memory`` or ``disk``), ``streamed``,
        ``estimated_peak`` (bytes; module docstring); with posterior samples also ``sample_bytes`` (the sampling
        phase: the MAP's tile cost per chain, since a chain step is one decode and gradient like a MAP step).
    """
    buffers = buffers or ImageBuffers()
    pixels = height * width
    output = 0 if output_on_disk else buffers.output + buffers.posterior
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
    sample = _sample_bytes(height, width, recipe, patch, cost, max_tiles, buffers, held)
    extra = {"sample_bytes": int(sample)} if buffers.chains else {}
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
        "estimated_peak": int(baseline + max(read, warm, solve, sample, write)),
        **extra,
    }


def _sample_bytes(height: int, width: int, recipe, patch: int, cost: TileCost, max_tiles: int,
                  buffers: ImageBuffers, held: float) -> float:
    """The posterior sampling phase (0 without samples): the held arrays, the sampler's band of blended rows and
    ``max(max_tiles, chains)`` tile chains at once (:func:`flowprior.posterior.sampling.sample_rows` runs
    ``max_tiles // N`` tiles of N chains each, and at least one tile)."""
    if not buffers.chains:
        return 0
    grid = _grid(height, width, recipe, patch)
    band_rows = (-(-max_tiles // len(grid.xs)) + 2) * patch
    chains = max(max_tiles, buffers.chains)
    band = band_rows * grid.padded_width * buffers.posterior_band
    return held + band + chains * cost.bytes_per_tile + FIXED_BYTES


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
