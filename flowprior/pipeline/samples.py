"""Stage *posterior samples* (``--samples N``): N posterior samples of the restoration, drawn by Langevin dynamics
from the MAP rows just restored (:func:`flowprior.posterior.sampling.sample_rows`) under the same recipe, mask,
prior and thread count, tile by tile and blended like the MAP.

What it writes beside the output: ``STEM.std.png``, the per-pixel posterior standard deviation (16-bit, in the
solver's channels: one for a gray image or a kept-chroma print, where the luminance is restored, else three), and
with ``--save-samples`` each sample as ``STEM.sample-NN.png`` (through the output's colour, strength and bit depth).
With ``posterior.output: mean`` the output image is the posterior mean instead of the MAP. ``--compare`` gets the
std map as a third panel (gray, the mean over channels; white = :data:`REVIEW_STD_WHITE`).

The std map's scale: ``value = round(std × 131070)`` (:data:`STD_SCALE`), so the 16 bits span std 0 to 0.5, the
largest standard deviation values in [0, 1] can have (the samples are clamped to [0, 1]); one step is 7.6e-6. The
sidecar's ``posterior.std`` records the scale and this meaning. The std is that of the restoration itself, before
``--strength`` blends it toward the input.

Memory: from the start of the restore the MAP rows are kept as float32 (the chains' start; the output samples are
quantized and through colour and strength), the std as 16-bit and each saved sample as output samples, each a
:class:`flowprior.io.RowStore` in a file when the memory plan puts the output on disk; the sampler reads the input
and the MAP a band of tile rows at a time, like the solve. The memory plan counts all of it
(:class:`flowprior.batch.memory.ImageBuffers`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from degradations import parse
from flowprior.hashing import file_sha256
from flowprior.io import LazyRows, RowStore, temporary_path, to_hwc, write_array
from flowprior.pipeline.blend import RowSink
from flowprior.pipeline.output_rows import output_sink, solver_input
from flowprior.pipeline.paths import sample_path, std_path
from flowprior.pipeline.request import RestoreRequest, RestoreState
from flowprior.posterior.sampling import refuse_size_change, sample_rows

#: ``std = value / STD_SCALE``: 16 bits (65535) span std 0 .. 0.5, the largest std of values in [0, 1]
STD_SCALE = 131070
#: the std the --compare panel shows as white (typical stds are 0.01-0.03, docs/benchmarks.md)
REVIEW_STD_WHITE = 0.1


@dataclass
class PosteriorRows:
    """Where the stage keeps its rows until they are written."""

    map_rows: RowStore  # (H, W, C) float32: the MAP restoration as the solver emitted it (C: the solver's)
    std: RowStore  # (H, W, C) uint16: round(std * STD_SCALE)
    samples: list[RowStore] = field(default_factory=list)  # --save-samples: each of the output's shape and dtype


def open_posterior_rows(request: RestoreRequest, state: RestoreState) -> None:
    """Open the stage's row stores (in files beside their outputs when the plan keeps the output on disk); nothing
    without ``--samples``. Called before the MAP restore, whose rows :func:`keep_map_rows` copies. A degradation
    that changes the image size is refused here (exit 2)."""
    if not state.samples:
        return
    (height, width), channels = state.image.size, solver_input(state).channels
    try:
        op = parse(state.recipe.degradation, state.recipe.params)
    except ValueError:
        op = None  # a bad spec: the restore's own bind reports it
    if op is not None:  # before the MAP is solved, not after
        refuse_size_change(op, height, width)
    on_disk = state.memory is not None and state.memory["output"] == "disk"

    def store(shape, dtype, final) -> RowStore:
        opened = RowStore(shape, dtype, temporary_path(final) if on_disk else None)
        state.stores.append(opened)  # closed (its file deleted) at the end of the restore
        return opened

    target = request.target
    state.posterior_rows = PosteriorRows(
        map_rows=store((height, width, channels), np.float32, std_path(target)),
        std=store((height, width, channels), np.uint16, std_path(target)),
        samples=[store(state.store.shape, state.store.dtype, sample_path(target, k, state.samples))
                 for k in range(state.samples if request.save_samples else 0)],
    )


def keep_map_rows(state: RestoreState, sink: RowSink) -> RowSink:
    """``sink``, with the MAP rows also kept (float32, as emitted) when posterior samples will start from them."""
    if state.posterior_rows is None:
        return sink
    kept = state.posterior_rows.map_rows

    def emit(b: int, y0: int, y1: int, rows: torch.Tensor) -> None:
        kept[y0:y1] = rows[0].permute(1, 2, 0).numpy()
        sink(b, y0, y1, rows)

    return emit


def sample_posterior(request: RestoreRequest, state: RestoreState) -> None:
    """Draw the samples (nothing without ``--samples``): std rows into their store, the posterior mean into the
    output (``posterior.output: mean``), each sample into its store; the std panel for ``--compare``."""
    rows = state.posterior_rows
    if rows is None:
        return
    config = state.recipe.posterior
    mean_sink = output_sink(state) if config.output == "mean" else None
    sample_sinks = [output_sink(state, store) for store in rows.samples]

    def x_map(b: int, y0: int, y1: int) -> torch.Tensor:
        return torch.from_numpy(np.array(rows.map_rows[y0:y1])).permute(2, 0, 1)[None]

    def emit(b: int, y0: int, y1: int, mean, std, samples) -> None:
        rows.std[y0:y1] = to_hwc(std * (STD_SCALE / 65535), None, 16)  # to_hwc scales [0, 1] by 65535
        if mean_sink is not None:
            mean_sink(b, y0, y1, mean.clamp(0, 1))
        for k, sink in enumerate(sample_sinks):
            sink(b, y0, y1, samples[k])

    generator = torch.Generator().manual_seed(config.seed)  # the chains' only randomness: the seed replays them
    info = sample_rows(solver_input(state), x_map, state.recipe, state.mask_tensor, state.prior, config, generator,
                       emit, keep_samples=bool(rows.samples))
    state.posterior = {"samples": state.samples, "output": config.output, **info}
    state.review_panels.append(std_panel(rows.std))


def std_panel(std: RowStore) -> LazyRows:
    """The std map as an 8-bit gray review panel: the mean over channels, white = :data:`REVIEW_STD_WHITE`."""
    height, width = std.shape[:2]

    def read(y0: int, y1: int) -> np.ndarray:
        values = std[y0:y1].astype(np.float64).mean(axis=2, keepdims=True) / STD_SCALE
        return np.rint(np.clip(values / REVIEW_STD_WHITE, 0, 1) * 255).astype(np.uint8)

    return LazyRows((height, width, 1), np.uint8, read)


def write_posterior(request: RestoreRequest, state: RestoreState) -> None:
    """Write ``STEM.std.png`` and the saved samples (ICC and DPI as the output's), and record them, the std's
    scale and its meaning in ``state.posterior`` (the sidecar's ``posterior``)."""
    rows = state.posterior_rows
    if rows is None:
        return
    image, target = state.image, request.target
    std = write_array(std_path(target), rows.std, dpi=image.dpi)
    state.posterior["std"] = {
        "path": str(std), "sha256": file_sha256(std), "bit_depth": 16, "channels": rows.std.shape[2],
        "scale": STD_SCALE,
        "meaning": f"pixel value / {STD_SCALE} = the posterior standard deviation of the restored value on the "
                   "[0, 1] intensity scale, per channel of the solver (luminance when chroma is kept), before "
                   "--strength",
    }
    written = []
    for k, store in enumerate(rows.samples):
        path = write_array(sample_path(target, k, state.samples), store, icc_profile=image.icc_profile,
                           dpi=image.dpi)
        written.append({"path": str(path), "sha256": file_sha256(path)})
    state.posterior["saved_samples"] = written or None
