"""Restoration, orchestration only: recipe -> operator -> tiles -> warm start -> latent MAP -> merge.

Library use::

    import flowprior
    restored = flowprior.restore(image, degradation="jpeg+noise", params={"jpeg.quality": 30})
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from degradations import parse
from flowprior import tiling
from flowprior.auto_degradation import AUTO, ESTIMATED_OPERATORS, find_degradation, with_user_values
from flowprior.conditioning import QUANTITIES
from flowprior.errors import UsageError
from flowprior.recipe import from_dict, load_recipe, set_dotted, to_dict
from flowprior.solver import Energy, LatentMAPSolver, Stage, coarse_to_fine
from flowprior.solver.weighting import noise_matched_weight
from flowprior.warm_bands import DETERMINISTIC, BandedWarmStart, can_band
from flowprior.warmstart import get_initializer

RECIPE_SECTIONS = ("degradation", "params", "solver", "tiling", "init", "init_checkpoint", "init_unknown", "model",
                   "seed")


@dataclass
class SolverSection:
    data_term: str = "operator"  # "operator": the degradation's forward model; "identity": the paper's A = id
    prior_term: str = "latent"  # "flow": full -log p(T(u)); "latent": -log N(u) only
    weight: float = 50.0  # λ, on the sum of squared errors of [0, 1] pixels
    # λ = t / (2σ²) from the noise the degradation declares (flowprior.solver.weighting); None = always `weight`
    noise_temperature: float | None = None
    optimizer: str = "adam"
    lr: float = 0.05
    lr_decay: str = "cosine"  # "cosine" or "constant" (the paper) within each stage
    steps_per_stage: int = 50
    final_steps: int = 150
    prior_weight: float = 1.0
    init_latent: str = "coarsest"  # "coarsest" (paper Eq. 19: finer levels at their means), "full", "zero"
    # JPEG data term: exact rounding with a straight-through gradient (= JPEG cell consistency). A soft rounding
    # (finite hardness) has near-zero gradient inside each cell and let the prior wash out detail (tuning log).
    jpeg_hardness: float = math.inf

    def __post_init__(self):
        for name, value, choices in [("data_term", self.data_term, ("operator", "identity")),
                                     ("prior_term", self.prior_term, ("flow", "latent")),
                                     ("optimizer", self.optimizer, ("adam", "lbfgs")),
                                     ("init_latent", self.init_latent, ("coarsest", "full", "zero"))]:
            if value not in choices:
                raise ValueError(f"{name} must be one of {choices}, not {value!r}")
        if self.noise_temperature is not None and self.noise_temperature <= 0:
            raise ValueError("noise_temperature must be positive (or null to use the fixed weight)")
        if self.weight < 0 or self.lr <= 0 or self.steps_per_stage < 0 or self.final_steps < 0:
            raise ValueError("weight >= 0, lr > 0 and non-negative step counts are required")


@dataclass
class TilingSection:
    overlap: int = 8  # the paper's margin M = 4 on each side
    max_tiles: int | None = None  # solve at most this many tiles at once (bounds memory); None = all


@dataclass
class RestoreRecipe:
    degradation: str = "jpeg+noise"
    params: dict[str, Any] = field(default_factory=dict)  # operator arguments, e.g. {"jpeg.quality": 30}
    solver: SolverSection = field(default_factory=SolverSection)
    tiling: TilingSection = field(default_factory=TilingSection)
    init: str = "identity"
    init_checkpoint: str | None = None  # the learned warm start's checkpoint (resflow, irflow, flowie)
    # quantities a conditioned warm start is told are unknown ("noise", "jpeg"): blind use of the same model
    init_unknown: list[str] = field(default_factory=list)
    model: str = "default"  # "default" (embedded) or a checkpoint path
    seed: int = 0

    def stages(self, num_levels: int) -> list[Stage]:
        s = self.solver
        return coarse_to_fine(num_levels, s.steps_per_stage, s.final_steps, s.lr, s.prior_weight, s.lr_decay)


@dataclass
class RestoreResult:
    image: Tensor  # (B, C, H, W) in [0, 1]
    info: dict[str, Any]


def split_settings(settings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``--set`` items into recipe overrides (``solver.weight``) and operator arguments (``jpeg.quality``)."""
    recipe, operator = {}, {}
    for key, value in settings.items():
        (recipe if key.split(".")[0] in RECIPE_SECTIONS else operator)[key] = value
    return recipe, operator


def with_total_steps(recipe: RestoreRecipe, steps: int, num_levels: int) -> RestoreRecipe:
    """Rescale the schedule to ``steps`` in all, keeping the paper's proportions (final stage = 3 x the others)."""
    if steps < num_levels:
        raise UsageError(f"--steps must be at least the number of latent levels ({num_levels})")
    per_stage = steps // (num_levels + 2)
    recipe.solver.steps_per_stage = per_stage
    recipe.solver.final_steps = steps - per_stage * (num_levels - 1)
    return recipe


def build_recipe(recipe: RestoreRecipe | str | Path | None, overrides: dict[str, Any],
                 operator_params: dict[str, Any]) -> RestoreRecipe:
    """A recipe (object, YAML path or defaults) + dotted recipe overrides + operator arguments.

    Operator arguments are kept apart because their own keys are dotted (``jpeg.quality``).
    """
    if isinstance(recipe, RestoreRecipe):
        data = to_dict(recipe)
        for key, value in overrides.items():
            set_dotted(data, key, value)
        resolved = from_dict(RestoreRecipe, data)
    else:
        resolved = load_recipe(RestoreRecipe, recipe, overrides)
    resolved.params = {**resolved.params, **operator_params}
    return resolved


#: which shipped recipe ``--recipe auto`` picks, by the set of operators in the degradation spec
AUTO_RECIPES = {frozenset({"noise"}): "noise", frozenset({"jpeg"}): "jpeg", frozenset({"mask"}): "inpaint"}


#: what the embedded warm start was trained on: ``auto`` restores these with ``recipes/restore/fast.yaml``
FAST_OPERATORS = frozenset({"jpeg", "noise", "mask", "identity"})


def auto_recipe_name(spec: str, init: str | None = None, warm_start: bool = True) -> str:
    """The shipped restore recipe for this kind of degradation.

    ``fast`` (learned warm start + short MAP) when every operator is one the embedded warm start was trained on
    and no ``init`` other than a learned one is asked for; otherwise the cold recipe tuned for the degradation
    (``noise``, ``jpeg``, ``inpaint``, or ``default`` for compositions). ``warm_start=False`` always picks the
    cold one.
    """
    from flowprior.weights import EMBEDDED, warmstart_name

    if spec == AUTO:  # what the estimators can find
        names = ESTIMATED_OPERATORS
    else:
        try:
            op = parse(spec)
        except ValueError as error:
            raise UsageError(str(error)) from None
        names = frozenset(member.name for member in getattr(op, "members", [op]))
    if warm_start and init != "identity" and names <= FAST_OPERATORS and warmstart_name("irflow") in EMBEDDED:
        return "fast"
    return AUTO_RECIPES.get(names, "default")


def find_restore_recipe(name_or_path: str, degradation: str, init: str | None = None) -> Path:
    """A restore recipe's YAML: a path, a shipped recipe's name, or ``"auto"`` (:func:`auto_recipe_name`)."""
    from flowprior.recipe import find_recipe

    name = auto_recipe_name(degradation, init=init) if name_or_path == "auto" else name_or_path
    return find_recipe(name, "restore")


def load_model(name_or_path: str):
    from flowprior.prior.checkpoint import load_prior
    from flowprior.weights import embedded_path

    if name_or_path in ("default",):
        path, sha256 = embedded_path(name_or_path)
        return load_prior(path, expected_sha256=sha256)
    return load_prior(name_or_path)


def _build_operator(recipe: RestoreRecipe, shape: tuple[int, int, int, int], mask: Tensor | None):
    spec = recipe.degradation
    if mask is not None and "mask" not in spec.replace("(", "+").split("+"):
        spec = f"{spec}+mask"
    try:
        op = parse(spec, recipe.params)
        members = getattr(op, "members", [op])
        keys = getattr(op, "keys", [op.name])
        solver_params = {f"{key}.hardness": recipe.solver.jpeg_hardness for key, member in zip(keys, members)
                         if member.name == "jpeg" and f"{key}.hardness" not in recipe.params}
        if solver_params:
            op = parse(spec, {**recipe.params, **solver_params})
    except ValueError as error:
        raise UsageError(str(error)) from None
    if op.output_size(shape[2], shape[3]) != (shape[2], shape[3]):
        raise UsageError(f"{spec!r} changes the image size; restoring size-changing degradations is not supported yet")
    _refuse_unestimable(op, spec)
    params = op.sample_params(shape, torch.Generator().manual_seed(recipe.seed))
    mask_keys = [key for key in params if key == "mask" or key.endswith(".mask")]
    if mask_keys:
        if mask is None:
            raise UsageError("the degradation includes 'mask': pass the mask of missing pixels with --mask FILE")
        for key in mask_keys:
            params[key] = mask.to(params[key].dtype)
    return op, params


def _refuse_unestimable(op, spec: str) -> None:
    """Exit 2 before any work when the degradation has a random realization it cannot estimate (rain, snow)."""
    if missing := [m if "." in m else f"{op.name}.{m}" for m in op.unestimable()]:  # a chain's are prefixed
        raise UsageError(f"{spec!r}: flowprior cannot estimate the {', '.join(missing)} of a photo yet, and "
                         "restoring with a randomly drawn one would model some other photo; leave "
                         f"{', '.join(sorted({m.split('.')[0].split('#')[0] for m in missing}))} out of --degradation")


def _estimate_realization(op, y: Tensor, params: dict[str, Tensor]) -> dict[str, Tensor]:
    """``params`` with the damage's realization (a haze depth) estimated from ``y``, never drawn from the seed."""
    if not op.realization:
        return params
    estimated = op.estimate_params(y, params)
    return {key: estimated.get(key, value) for key, value in params.items()}


def _data_weight(solver: SolverSection, op, tile_params: dict, dtype: torch.dtype):
    """λ for a chunk of tiles: fixed, or matched per tile to the noise the degradation declares."""
    sigma = op.noise_std(tile_params) if solver.noise_temperature is not None else None
    weight = noise_matched_weight(sigma, solver.noise_temperature, solver.weight)
    return weight.to(dtype) if isinstance(weight, torch.Tensor) else weight


def make_initializer(recipe: RestoreRecipe):
    """The recipe's warm start; a learned one gets its checkpoint and the recipe's seed."""
    if recipe.init == "identity":
        if recipe.init_checkpoint is not None:
            raise UsageError(f"init_checkpoint={recipe.init_checkpoint} is set but init is 'identity', which "
                             "loads no model; choose a learned init (--init resflow|irflow|flowie)")
        return get_initializer("identity")
    unknown = set(recipe.init_unknown) - set(QUANTITIES)
    if unknown:
        raise UsageError(f"init_unknown: {sorted(unknown)} are not quantities a warm start reads "
                         f"(known: {', '.join(QUANTITIES)})")
    return get_initializer(recipe.init, checkpoint=recipe.init_checkpoint, seed=recipe.seed,
                           unknown=tuple(recipe.init_unknown))


@dataclass
class ImageRows:
    """A batch of images that the solver reads a band of rows at a time (:func:`restore_rows`).

    ``read(b, y0, y1)`` -> (1, C, y1 - y0, W): rows of image ``b`` in [0, 1] (e.g. decoded from a file's samples
    on demand). :meth:`of` wraps a tensor.
    """

    batch: int
    channels: int
    height: int
    width: int
    read: Callable[[int, int, int], Tensor]

    @classmethod
    def of(cls, y: Tensor) -> ImageRows:
        return cls(y.shape[0], y.shape[1], y.shape[2], y.shape[3], lambda b, y0, y1: y[b : b + 1, :, y0:y1])


def _remember_last(read: Callable[[int, int, int], Tensor]) -> Callable[[int, int, int], Tensor]:
    """``read`` that returns its last result again for the same rows (the observation and the warm start of a
    chunk, and successive chunks in the same tile rows, read the same band)."""
    last: dict[str, Any] = {}

    def cached(b: int, y0: int, y1: int) -> Tensor:
        if last.get("key") != (b, y0, y1):
            last.update(key=(b, y0, y1), rows=read(b, y0, y1))
        return last["rows"]

    return cached


def streams(recipe: RestoreRecipe, mask: bool) -> bool:
    """Whether :func:`restore_rows` streams an image of this recipe band by band.

    It does when the warm start can be computed a band at a time: the identity initializer (pixel by pixel) or a
    deterministic learned one (block by block, :mod:`flowprior.warm_bands`), without a mask (filling holes looks at
    the whole image) and with no operator parameter the size of the image.
    """
    if recipe.init not in ("identity", *DETERMINISTIC) or mask:
        return False
    try:
        op = parse(recipe.degradation, recipe.params)
        probe = op.sample_params((1, 3, 16, 16), torch.Generator().manual_seed(0))
    except Exception:  # noqa: BLE001 - a mask file operator, a bad spec: not streamed (the solve reports errors)
        return False
    return not _image_sized(probe, (16, 16))


def _image_sized(params: dict[str, Tensor], size: tuple[int, int]) -> bool:
    """Whether an operator parameter is a map the size of the image (a mask, a haze depth, an overlay)."""
    return any(v.dim() == 4 and tuple(v.shape[-2:]) == tuple(size) for v in params.values())


def restore_rows(source: ImageRows, recipe: RestoreRecipe | None = None, mask: Tensor | None = None, prior=None,
                 progress: bool = False,
                 emit: Callable[[int, int, int, Tensor], None] | None = None) -> dict[str, Any]:
    """Restore images read by rows, handing out the restored rows as they are final.

    Tiles are solved ``recipe.tiling.max_tiles`` at a time, in tile order (row-major, image after image). When
    :func:`streams` holds, each chunk's observation and warm start are cut from the band of rows its tiles cover,
    read from ``source`` just then, and :class:`~flowprior.tiling.Blender` hands out each image row once no later
    tile touches it: only one band of float rows exists at a time. Otherwise (holes to fill, a learned warm start)
    the whole image is read and the warm start computed on it first, as before. The values do not depend on
    streaming: the chunks are the same, every tile is solved on its own, and tile rows are blended in one order.

    Args:
        source: the images; C = 1 or 3 (gray is solved as RGB and averaged back).
        recipe, mask, prior, progress: as for :func:`restore_tensor`.
        emit: ``emit(b, y0, y1, rows)`` receives rows (1, C, y1 - y0, W) float32 in [0, 1] of image ``b``, each
            image row once, top to bottom.

    Returns:
        The info dict of :class:`RestoreResult`.
    """
    recipe = recipe or RestoreRecipe()
    if source.channels not in (1, 3):
        raise UsageError(f"expected images with 1 or 3 channels, got {source.channels}")
    started = time.perf_counter()
    timings: dict[str, float] = {}
    prior = prior if prior is not None else load_model(recipe.model)
    batch, height, width, gray = source.batch, source.height, source.width, source.channels == 1
    channels = getattr(prior, "in_channels", 3)  # the solver works in the prior's colour space
    if channels == 1 and not gray:
        raise UsageError("this prior models gray images (1 channel); convert the colour input to gray first")
    shape = (batch, channels, height, width)
    if mask is not None:
        if mask.shape[-2:] != (height, width):
            raise UsageError(f"mask size {tuple(mask.shape[-2:])} does not match the image {(height, width)}")
        mask = (mask.reshape(-1, 1, height, width).expand(batch, -1, -1, -1) > 0.5).float()
    op, params = _build_operator(recipe, shape, mask)
    observed_mask = op.observed_mask(params)
    initializer = make_initializer(recipe)

    def solve_rows(b: int, y0: int, y1: int) -> Tensor:
        rows = source.read(b, y0, y1).float().clamp(0, 1)
        return rows.expand(-1, channels, -1, -1) if gray else rows

    # an operator with a random realization (haze) estimates it from the whole image, so it does not stream
    streamed = observed_mask is None and not _image_sized(params, (height, width)) and not op.realization
    banded = streamed and batch == 1 and can_band(recipe.init, height, width)
    streamed = streamed and (recipe.init == "identity" or banded)
    if banded:  # a learned warm start, block row by block row (flowprior.warm_bands)
        y = _remember_last(solve_rows)
        x0 = _remember_last(BandedWarmStart(initializer, solve_rows, op, params, height, width))
    elif streamed:  # the warm start is per pixel: compute it on each band
        y = _remember_last(solve_rows)

        def warm_start(b: int, y0: int, y1: int) -> Tensor:
            return initializer(y(b, y0, y1), op, {key: value[b : b + 1] for key, value in params.items()})

        x0 = _remember_last(warm_start)
    else:
        y = torch.cat([solve_rows(b, 0, height) for b in range(batch)])
        params = _estimate_realization(op, y, params)
        x0 = initializer(y, op, params)
    timings["init"] = time.perf_counter() - started

    align = math.lcm(op.block_size(), 1)
    grid = tiling.make_grid(height, width, tile=prior.patch_size, overlap=recipe.tiling.overlap, align=align)
    stages = recipe.stages(prior.num_levels)
    num_tiles = batch * grid.num_tiles  # all tiles of all images
    total = sum(s.steps for s in stages) * num_tiles
    bar = tqdm(total=total, disable=not progress, desc="restore", unit="tile-step", dynamic_ncols=True)
    solver = LatentMAPSolver(prior, recipe.solver.optimizer, progress=bar.update)

    def finish(b: int, y0: int, y1: int, rows: Tensor) -> None:
        rows = rows.clamp(0, 1)
        if emit is not None:
            emit(b, y0, y1, rows.mean(1, keepdim=True) if gray else rows)

    blender = tiling.Blender(grid, finish)
    energies, rollbacks = [], 0
    for rows in tiling.iter_chunks(num_tiles, recipe.tiling.max_tiles or num_tiles):
        chunk_params = tiling.split_params_range(params, grid, batch, rows.start, rows.stop)
        forward = None
        if recipe.solver.data_term == "operator":
            forward = lambda x, p=chunk_params: op.forward_model(x, p)
        chunk_mask = None if observed_mask is None else tiling.split_range(observed_mask, grid, rows.start, rows.stop)
        observed = tiling.split_range(y, grid, rows.start, rows.stop)
        energy = Energy(observed=observed, mask=chunk_mask,
                        forward=forward, weight=_data_weight(recipe.solver, op, chunk_params, observed.dtype),
                        prior_term=recipe.solver.prior_term)
        init = initial_latents(prior, tiling.split_range(x0, grid, rows.start, rows.stop), recipe.solver.init_latent)
        result = solver.solve(energy, init, stages)
        del energy, init
        blender.add(result.image)
        energies.append(result.stage_energies)
        rollbacks += result.rollbacks
    bar.close()
    timings["solve"] = time.perf_counter() - started - timings["init"]
    timings["total"] = time.perf_counter() - started
    return {
        "recipe": to_dict(recipe),
        "degradation": op.spec(),
        "params": _summarize_params(params),
        "tiles": {"count": grid.num_tiles, "size": grid.tile, "overlap": grid.overlap, "align": grid.align,
                  "streamed": streamed},
        "stage_energies": _mean_energies(energies),
        "rollbacks": rollbacks,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "model": {"name": recipe.model, "sha256": getattr(prior, "sha256", None)},
        # what a conditioned warm start was told about the degradation (None: no learned or a blind warm start)
        "warm_start_condition": getattr(initializer, "last_condition", None),
    }


def restore_tensor(y: Tensor, recipe: RestoreRecipe | None = None, mask: Tensor | None = None, prior=None,
                   progress: bool = False) -> RestoreResult:
    """Restore a degraded image.

    Args:
        y: (B, C, H, W) degraded images of one size in [0, 1], C = 1 or 3 (all tiles of all images are one batch).
        recipe: settings; defaults to :class:`RestoreRecipe`.
        mask: (B, 1, H, W) with 1 = observed, 0 = missing, or None.
        prior: a loaded prior; defaults to ``recipe.model``.
        progress: show a tqdm bar (steps x tiles).
    """
    if y.ndim != 4 or y.shape[1] not in (1, 3):
        raise UsageError(f"expected (B, C, H, W) images with 1 or 3 channels, got shape {tuple(y.shape)}")
    if not torch.isfinite(y).all():
        raise UsageError("the input image contains NaN or inf values")
    out = torch.empty(y.shape, dtype=torch.float32)

    def emit(b: int, y0: int, y1: int, rows: Tensor) -> None:
        out[b : b + 1, :, y0:y1] = rows

    info = restore_rows(ImageRows.of(y), recipe, mask, prior, progress, emit)
    return RestoreResult(out, info)


@torch.no_grad()
def initial_latents(prior, x0: Tensor, how: str) -> list[Tensor]:
    """Latents to start from: the paper's Eq. 19 (coarsest from T^-1(x0), finer at their means), all, or zeros."""
    shapes = prior.latent_shapes(x0.shape[0], x0.shape[2], x0.shape[3])
    if how == "zero":
        return [torch.zeros(s) for s in shapes]
    z, _ = prior.encode(x0)
    z = [torch.nan_to_num(zi, nan=0.0, posinf=0.0, neginf=0.0) for zi in z]  # an encode of a bad tile must not poison
    if how == "full":
        return z
    return [torch.zeros_like(zi) for zi in z[:-1]] + [z[-1]]


def _summarize_params(params: dict[str, Tensor]) -> dict[str, Any]:
    out = {}
    for key, value in params.items():
        if value.numel() <= 16:
            out[key] = value.flatten().tolist()
        else:
            out[key] = {"shape": list(value.shape), "mean": float(value.float().mean())}
    return out


def _mean_energies(chunks: list[list[dict[str, float]]]) -> list[dict[str, float]]:
    if not chunks:
        return []
    out = []
    for stage in range(len(chunks[0])):
        rows = [c[stage] for c in chunks]
        out.append({"active": rows[0]["active"], "steps": rows[0]["steps"],
                    "start": float(np.nanmean([r["start"] for r in rows])),
                    "end": float(np.nanmean([r["end"] for r in rows]))})
    return out


def restore(image, degradation: str = "jpeg+noise", mask=None, recipe: RestoreRecipe | str | Path | None = "auto",
            params: dict[str, Any] | None = None, **settings) -> Tensor | np.ndarray:
    """Restore an image: the one-call Python API.

    Args:
        image: a path, a (H, W[, C]) uint8/uint16/float numpy array, or a (C, H, W) / (1, C, H, W) float tensor.
        degradation: what happened to it, e.g. ``"jpeg+noise+mask"``.
        mask: 1 = observed, 0 = missing, same kinds of input as ``image`` (or a path), or None.
        recipe: ``"auto"`` (as ``flowprior restore``: :func:`auto_recipe_name`), a shipped recipe's name, a YAML
            path, a :class:`RestoreRecipe`, or None for the built-in defaults.
        params: operator arguments, e.g. ``{"jpeg.quality": 30, "noise.sigma": 5}``.
        **settings: recipe overrides with dotted names written with ``__``, e.g. ``solver__weight=20``.

    Returns:
        The restored image in the same kind and layout as ``image`` (a path gives a (1, C, H, W) tensor).

    Example:
        >>> import flowprior, torch  # doctest: +SKIP
        >>> flowprior.restore(torch.rand(3, 64, 64), "noise", params={"noise.sigma": 15}).shape  # doctest: +SKIP
        torch.Size([3, 64, 64])
    """
    from flowprior.io import read_image

    overrides = {key.replace("__", "."): value for key, value in settings.items()}
    overrides["degradation"] = degradation
    if isinstance(recipe, str):
        recipe = find_restore_recipe(recipe, degradation, overrides.get("init"))
    recipe = build_recipe(recipe, overrides, params or {})
    tensor, layout = _as_tensor(image, read_image)
    mask_tensor = None if mask is None else _as_tensor(mask, read_image)[0][:, :1]
    if recipe.degradation == AUTO:
        found = with_user_values(find_degradation(tensor[:1], image if isinstance(image, (str, Path)) else None),
                                 recipe.params, mask_given=mask_tensor is not None)
        recipe.degradation, recipe.params = found.spec, found.params
        mask_tensor = found.mask if mask_tensor is None else mask_tensor
    result = restore_tensor(tensor, recipe, mask_tensor)
    return layout(result.image)


def _as_tensor(image, read_image):
    """-> ((1, C, H, W) float tensor in [0, 1], function mapping a result back to the caller's layout)."""
    if isinstance(image, (str, Path)):
        return read_image(image).pixels, lambda t: t
    if isinstance(image, np.ndarray):
        scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(image.dtype, 1.0)
        array = image.astype(np.float32) / scale
        chw = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
        tensor = torch.from_numpy(np.ascontiguousarray(chw))[None]

        def back(t: Tensor):
            out = t[0].permute(1, 2, 0).numpy()
            out = out[..., 0] if image.ndim == 2 else out
            return (out * scale).round().astype(image.dtype) if scale != 1.0 else out.astype(image.dtype)

        return tensor, back
    if isinstance(image, Tensor):
        if image.ndim == 3:
            return image[None], lambda t: t[0]
        return image, lambda t: t
    raise UsageError(f"cannot restore an object of type {type(image).__name__}")
