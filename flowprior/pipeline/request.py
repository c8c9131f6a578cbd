"""What a file restore is asked to do (:class:`RestoreRequest`, frozen) and what its stages find out on the way
(:class:`RestoreState`, filled stage by stage by :func:`flowprior.pipeline.run.run_restore`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from flowprior.pipeline.recipe import RestoreRecipe


@dataclass(frozen=True)
class RestoreRequest:
    """Restore ``source`` into ``target`` (+ ``target.json``, + the review image when ``compare``).

    Attributes:
        source, target: image paths; the target's suffix picks the format (lossy only when it says so).
        degradation, recipe, settings, operator_params, steps, seed, init, model: what to solve
            (see ``flowprior restore --help``); ``recipe`` may be a resolved :class:`RestoreRecipe`.
        mask, invert_mask: mask file of missing pixels (nonzero = observed).
        progress: tqdm bar over the tile-steps.
        prior: an already loaded prior (batches load it once); it must be ``recipe.model``.
        chroma: ``"auto"`` (default), ``"keep"`` or ``"restore"`` (:mod:`flowprior.restore_file`).
        strength: blend toward the input, 0..1 (default 1: the restoration as is).
        quality: JPEG/WebP quality (lossy output only).
        compare: also write ``compare_path(target)``: input | restored (| the std map with ``samples``), 8-bit PNG.
        samples: draw this many posterior samples around the MAP (the recipe's ``posterior`` section) and write
            ``std_path(target)``; None: no sampling (:mod:`flowprior.pipeline.samples`).
        save_samples: with ``samples``, also write each sample (``sample_path(target, k, samples)``).
        memory_planner: ``planner(height, width, recipe, prior, buffers) -> dict`` with ``max_tiles`` (the number of
            tiles solved at once) and ``output`` (``"disk"``: keep the output samples in a file), recorded as the
            sidecar's ``memory``; ``buffers`` is the file's :class:`flowprior.batch.memory.ImageBuffers`.
            :func:`flowprior.batch.memory_planner` makes one from a ``--max-memory`` budget. It may raise UsageError
            when the budget cannot be met. A default planner (``planner.default``, no ``--max-memory``) may be
            combined with ``params_from``: it then only checks the recorded ``max_tiles`` (``fixed=True``).
            The plan is made from the file's header, before it is decoded.
        params_from: a sidecar of an earlier run to replay bit for bit (excludes the solve options above).
        overwrite: replace an existing image, sidecar or review image (inputs are never written,
            :mod:`flowprior.output_guard`).
        accept_truncated: restore a file whose data ends early (missing rows come back black; a warning says so).
        threads: torch threads for this file (default: torch's current count; a replay: the recorded one). Float
            reductions depend on it, so it is recorded in the sidecar (``runtime.threads``).
        keep_tiling: ``recipe.tiling.max_tiles`` was already planned (by a batch driver, for its Ray workers): the
            planner only checks that it fits, as for a replay.
    """

    source: Path
    target: Path
    degradation: str | None = None
    mask: str | Path | None = None
    invert_mask: bool = False
    recipe: RestoreRecipe | str | Path | None = None
    settings: dict[str, Any] | None = None
    operator_params: dict[str, Any] | None = None
    steps: int | None = None
    seed: int | None = None
    init: str | None = None
    model: str | None = None
    progress: bool = True
    prior: Any = None
    chroma: str | None = None
    strength: float | None = None
    quality: int | None = None
    compare: bool = False
    memory_planner: Callable | None = None
    params_from: str | Path | None = None
    overwrite: bool = False
    accept_truncated: bool = False
    threads: int | None = None
    keep_tiling: bool = False
    samples: int | None = None
    save_samples: bool = False


@dataclass
class RestoreState:
    """What the stages settle, in their order; each stage reads what earlier ones filled in."""

    # resolve (flowprior.pipeline.resolve): the options as they apply to this file, a replay's included
    started_at: str
    clock: float
    fmt: Any  # flowprior.io.OutputFormat of the target
    recipe: RestoreRecipe
    replay: dict[str, Any] | None
    found: Any = None  # --degradation auto: the flowprior.auto_degradation.FoundDegradation
    mask: str | Path | None = None
    invert_mask: bool = False
    chroma: str = "auto"
    strength: float = 1.0
    quality: int | None = None
    threads: int | None = None
    samples: int | None = None  # posterior samples to draw (None: none); a replay's are the recorded run's
    prior: Any = None
    jpeg_note: Any = None  # what the input's own JPEG tables said (flowprior.jpeg_file.with_file_jpeg)
    notes: list[str] = field(default_factory=list)  # the sidecar's warnings, in the order they arose
    # plan (flowprior.pipeline.plan)
    memory: dict[str, Any] | None = None
    # read (flowprior.pipeline.read)
    image: Any = None  # the lazily decoded flowprior.io image: samples, rows made per band
    input_sha256: str | None = None
    mask_tensor: Tensor | None = None
    colour: dict[str, Any] = field(default_factory=dict)
    toning: Any = None  # flowprior.tone's fit, when chroma is kept or judged
    # output rows (flowprior.pipeline.output_rows)
    bit_depth: int = 8
    keep_alpha: bool = False
    stores: list[Any] = field(default_factory=list)  # every flowprior.io.RowStore opened (closed at the end)
    store: Any = None  # the output samples
    review_rows: Any = None  # the --compare image's 8-bit samples (the output's own when it is 8-bit)
    # restore (flowprior.pipeline.rows) and write (flowprior.pipeline.write)
    info: dict[str, Any] = field(default_factory=dict)
    review: Path | None = None
    write_seconds: float = 0.0
    # posterior samples (flowprior.pipeline.samples): their row stores, the review image's extra panels (the std
    # map) and what the sidecar records of them
    posterior_rows: Any = None
    review_panels: list[Any] = field(default_factory=list)
    posterior: dict[str, Any] | None = None

    @property
    def keep_chroma(self) -> bool:
        """Restore the luminance only and keep the input's chroma (a toned or monochrome print)."""
        return self.colour.get("mode") == "keep"
