"""Training loop of the learned warm starts (ResFlow, IR-Flow, FlowIE) on pairs synthesized on the fly.

Each step draws clean patches from the photo pool, degrades them with a seeded operator whose parameters are
drawn from ranges (default: JPEG q ∈ [10, 70], Gaussian σ ∈ [0, 15] on the 0–255 scale, square holes covering
0–10 %), fills the holes as restoration will (:func:`~flowprior.warmstart.learned.prepare_input`) and takes
one step on the method's loss. Resumable, NaN-safe and logged as JSON lines like :mod:`flowprior.train_prior`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from degradations import Degradation, parse
from flowprior.conditioning import condition_maps, drop_unknown
from flowprior.errors import UsageError
from flowprior.hashing import file_sha256
from flowprior.metrics import psnr
from flowprior.prior.checkpoint import read_checkpoint
from flowprior.recipe import to_dict
from flowprior.repeated_patches import repeat_some
from flowprior.train_prior import DataSection, make_patch_sources
from flowprior.training import (
    Cadence,
    forward_precision,
    make_adam,
    open_run,
    reseed_rank,
    resume_from,
    run_training,
)
from flowprior.warmstart.flowie import FlowIEConfig
from flowprior.warmstart.irflow import IRFlowConfig
from flowprior.warmstart.learned import WarmStartModel, build_warmstart, prepare_input, save_warmstart
from flowprior.warmstart.resflow import ResFlowConfig
from flowprior.warmstart.transplant import transplant

METHODS = ("resflow", "irflow", "flowie")


def default_degradation_params() -> dict[str, Any]:
    return {"jpeg.quality": "10:70", "noise.sigma": "0:15", "mask.coverage": "0:0.1"}


@dataclass
class MixtureEntry:
    """One degradation of a training mixture: a named operator chain, its parameter ranges and its weight."""

    name: str
    degradation: str
    params: dict[str, Any] = field(default_factory=dict)
    weight: float = 1.0


@dataclass
class WarmstartDataSection(DataSection):
    """The prior's patch data, plus the degradations that make the degraded side of each training pair.

    With an empty ``mixture`` every pair uses ``degradation``/``params``; otherwise each group of a batch draws
    one entry of the mixture (by weight), so a batch mixes single degradations and compositions.
    """

    degradation: str = "jpeg+noise+mask"  # the operator chain that makes the degraded side of each pair
    params: dict[str, Any] = field(default_factory=default_degradation_params)  # ranges, "lo:hi"
    mixture: list[MixtureEntry] = field(default_factory=list)
    groups: int = 1  # a batch is cut into this many groups, each degraded by its own draw from the mixture
    # conditioned networks: chance that a sample's noise level (and, independently, its JPEG tables) is
    # withheld, so the network also learns blind restoration
    unknown_probability: float = 0.2
    # share of training patches replaced by periodic tilings of a tile of their own (flowprior.repeated_patches)
    repeated: float = 0.0


@dataclass
class WarmstartOptimSection:
    lr: float = 2e-4
    warmup_steps: int = 200  # linear warmup, restarted at the start of each phase (FlowIE has two)
    # cosine decay from lr to final_lr_fraction * lr over the phase's steps; 1.0 keeps lr constant
    final_lr_fraction: float = 1.0
    grad_clip: float = 1.0
    # skip a batch whose loss exceeds this many times the running mean (flowprior.training.is_spike); null: never
    spike_factor: float | None = 50.0
    batch_size: int = 16
    steps: int = 10000
    max_minutes: float | None = None  # stop (with a checkpoint) after this much wall time
    checkpoint_every: int = 100
    log_every: int = 25
    val_every: int = 250
    val_patches: int = 32
    seed: int = 0
    threads: int | None = None
    # "bf16": the forward pass autocast to bfloat16 (flowprior.training.forward_precision); "fp32": no autocast
    precision: str = "fp32"
    fast_adam: bool = False  # channels-last weights and the fused Adam update (flowprior.training.make_adam)
    # torch.compile the network (inductor fuses the elementwise work around the convolutions; the first step and
    # each new input shape cost a compile of ~40 s, so it pays on long runs only)
    compile: bool = False
    # a trained warm-start checkpoint (any method) whose network starts a fresh run (flowprior.warmstart.transplant):
    # its keys land at init_prefix + key ("" for ResFlow from IR-Flow, "initial." for FlowIE's τφ)
    init_from: str | None = None
    init_prefix: str = ""


@dataclass
class WarmstartTrainRecipe:
    method: str = "irflow"  # which of the sections below is trained
    resflow: ResFlowConfig = field(default_factory=ResFlowConfig)
    irflow: IRFlowConfig = field(default_factory=IRFlowConfig)
    flowie: FlowIEConfig = field(default_factory=FlowIEConfig)
    data: WarmstartDataSection = field(default_factory=WarmstartDataSection)
    optim: WarmstartOptimSection = field(default_factory=WarmstartOptimSection)
    output: str = "runs/warmstart"

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, not {self.method!r}")
        if not 0.0 <= self.data.repeated <= 1.0:
            raise ValueError(f"data.repeated is a share of the patches, in [0, 1], not {self.data.repeated}")
        forward_precision(self.optim.precision)  # refuses an unknown precision before a run starts

    def build_model(self) -> WarmStartModel:
        return build_warmstart({"method": self.method, **to_dict(getattr(self, self.method))})


def flatten_params(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"jpeg": {"quality": 30}}`` -> ``{"jpeg.quality": 30}``: a ``--set data.params.jpeg.quality=30``
    override arrives nested; a nested value overrides a dotted key that came earlier."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict):
            flat.update(flatten_params(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def build_degradations(data: WarmstartDataSection) -> list[tuple[str, Degradation, float]]:
    """(name, operator, weight) of every member of the data's mixture (one member without a mixture)."""
    entries = data.mixture or [MixtureEntry("train", data.degradation, data.params)]
    built = []
    for entry in entries:
        entry = entry if isinstance(entry, MixtureEntry) else MixtureEntry(**entry)
        try:
            built.append((entry.name, parse(entry.degradation, flatten_params(entry.params)), entry.weight))
        except ValueError as error:
            raise UsageError(f"data mixture {entry.name!r}: {error}") from None
    if min(weight for *_, weight in built) < 0 or sum(weight for *_, weight in built) <= 0:
        raise UsageError("data.mixture weights must be >= 0 with a positive sum")
    return built


def synthesize_pairs(hq: Tensor, degradation: Degradation, generator: torch.Generator,
                     conditioned: bool = False) -> tuple[Tensor, Tensor | None]:
    """The filled degraded side of a batch of clean patches, with parameters drawn from ``generator``, and
    (when ``conditioned``) the degradation maps a conditioned network reads."""
    params = degradation.sample_params(tuple(hq.shape), generator)
    lq = prepare_input(degradation.apply(hq, params), degradation, params)
    return lq, condition_maps(degradation, params, tuple(lq.shape)) if conditioned else None


def mixture_groups(batch: int, mixture: list[tuple[str, Degradation, float]], groups: int,
                   generator: torch.Generator):
    """(rows, operator) for each group of a batch: the batch cut into ``groups``, each with a member of ``mixture``
    drawn by weight."""
    weights = torch.tensor([weight for *_, weight in mixture], dtype=torch.float64)
    for rows in torch.arange(batch).tensor_split(max(1, min(groups, batch))):
        yield rows, mixture[int(torch.multinomial(weights, 1, generator=generator))][1]


def synthesize_mixture(hq: Tensor, mixture: list[tuple[str, Degradation, float]], groups: int,
                       generator: torch.Generator, conditioned: bool) -> tuple[Tensor, Tensor | None]:
    """``synthesize_pairs`` group by group, each group degraded by a member of ``mixture`` drawn by weight."""
    lqs, conds = [], []
    for rows, operator in mixture_groups(hq.shape[0], mixture, groups, generator):
        lq, cond = synthesize_pairs(hq[rows], operator, generator, conditioned)
        lqs.append(lq)
        conds.append(cond)
    return torch.cat(lqs), torch.cat(conds) if conditioned else None


@torch.no_grad()
def validation_psnr(model: WarmStartModel, hq: Tensor, lq: Tensor, seed: int, chunk: int = 16,
                    cond: Tensor | None = None) -> float:
    """Mean PSNR (dB) of the model's few-step estimate on fixed held-out pairs, with fixed sampler noise."""
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed + 2)
    out = torch.cat([model.restore(lq[i:i + chunk], generator, None if cond is None else cond[i:i + chunk])
                     for i in range(0, lq.shape[0], chunk)])
    model.train(was_training)
    return round(float(psnr(hq, out.clamp(0, 1)).clamp(max=100).mean()), 4)  # identical pairs give +inf


@dataclass
class ValidationSet:
    """Fixed held-out pairs of one mixture member: clean, degraded and the degradation maps."""

    name: str
    hq: Tensor
    lq: Tensor
    cond: Tensor | None

    @property
    def input_psnr(self) -> float:
        return round(float(psnr(self.hq, self.lq).clamp(max=100).mean()), 4)


def validation_sets(source, mixture, patches: int, seed: int, conditioned: bool) -> list[ValidationSet]:
    """``patches`` held-out pairs per mixture member, drawn once from a fixed seed."""
    generator = torch.Generator().manual_seed(seed + 1)
    sets = []
    for name, operator, _ in mixture:
        hq = as_rgb(source.sample(patches, generator).float())
        lq, cond = synthesize_pairs(hq, operator, generator, conditioned)
        sets.append(ValidationSet(name, hq, lq, cond))
    return sets


def as_rgb(patches: Tensor) -> Tensor:
    return patches.expand(-1, 3, -1, -1).contiguous() if patches.shape[1] == 1 else patches


def validate_all(model: WarmStartModel, sets: list[ValidationSet], seed: int) -> dict[str, float]:
    """Held-out PSNR per mixture member and their mean (``"mean"``)."""
    scores = {v.name: validation_psnr(model, v.hq, v.lq, seed, cond=v.cond) for v in sets}
    scores["mean"] = round(sum(scores.values()) / len(sets), 4)
    return scores


def load_resume_state(last: Path, recipe, model, optimizer, generator, state: dict[str, Any]) -> None:
    """Continue a run from its ``last.pt`` (:func:`resume_from`), refusing one of another method."""
    payload = read_checkpoint(last)
    method = payload["config"].get("method")
    if method != recipe.method:
        raise UsageError(f"{last} holds a {method!r} run, not {recipe.method!r}")
    resume_from(payload, model, optimizer, generator, state)


def start_from_trained(path: str, prefix: str, model: WarmStartModel) -> dict[str, Any]:
    """Fill ``model`` from a trained warm start's network (see :func:`transplant`); what the run records of it."""
    payload = read_checkpoint(path)
    filled = transplant(payload["state_dict"], model, prefix)
    return {"path": str(path), "sha256": file_sha256(path), "method": payload["config"].get("method"),
            "prefix": prefix, "tensors": len(filled), "train_state": payload.get("meta", {}).get("train_state")}


def start_state(recipe, model, optimizer, generator, world, resume_from: Path | None) -> dict[str, Any]:
    """The run's counters: fresh, or continued from ``resume_from`` (a ``last.pt``: weights, optimizer and generator
    too); a rank other than 0 reseeds its generator, so every rank draws its own share of each batch."""
    state = {"step": 0, "skipped": 0, "seconds": 0.0, "best_val_psnr": None, "phase": model.phases[0],
             "phase_start": 0}
    if resume_from is not None:
        load_resume_state(resume_from, recipe, model, optimizer, generator, state)
    elif recipe.optim.init_from:
        state["init_from"] = start_from_trained(recipe.optim.init_from, recipe.optim.init_prefix, model)
    reseed_rank(generator, recipe.optim.seed, world, state["step"])
    return state


def input_psnrs(sets: list[ValidationSet]) -> dict[str, float]:
    """The degraded inputs' held-out PSNR per mixture member and their mean (``"mean"``): the baseline."""
    scores = {v.name: v.input_psnr for v in sets}
    scores["mean"] = round(sum(scores.values()) / len(sets), 4)
    return scores


def learning_rate(opt: WarmstartOptimSection, step: int, phase_steps: int) -> float:
    """Linear warmup, then a cosine from ``lr`` down to ``final_lr_fraction * lr`` at the phase's last step."""
    warm = min(1.0, (step + 1) / max(1, opt.warmup_steps))
    progress = min(1.0, max(0.0, (step - opt.warmup_steps) / max(1, phase_steps - opt.warmup_steps)))
    floor = opt.final_lr_fraction
    return opt.lr * warm * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def train_warmstart(recipe: WarmstartTrainRecipe, resume: bool = False, progress: bool = True,
                    sources=None) -> dict[str, Any]:
    """Train (or resume) the recipe's warm start; returns a summary.

    Writes into ``recipe.output``: ``last.pt`` (resumable: + optimizer and generator state), ``warmstart.pt``
    (the latest weights), ``best.pt`` (the highest mean held-out PSNR in the final phase), ``log.jsonl`` and
    ``recipe.yaml`` (the resolved recipe).

    Args:
        recipe: the training recipe.
        resume: continue from ``last.pt`` when it exists.
        progress: show a tqdm bar.
        sources: ``(train, val)`` objects with ``sample(batch, generator) -> (B, C, P, P)``; default: the
            recipe's data section.
    """
    run = open_run(recipe)
    world, out, batch = run.world, run.out, run.batch
    opt, data = recipe.optim, recipe.data
    mixture = build_degradations(data)
    train_source, val_source = sources or make_patch_sources(data, opt.seed)
    model = recipe.build_model()
    conditioned = model.conditioned
    optimizer = make_adam(model, opt.lr, opt.fast_adam)
    if opt.compile:
        model.net.compile(dynamic=False)  # in place: the state dict keeps its keys
    generator = torch.Generator().manual_seed(opt.seed)
    last = out / "last.pt"
    state = start_state(recipe, model, optimizer, generator, world, last if resume and last.exists() else None)
    world.broadcast(model.parameters())
    val_sets = validation_sets(val_source, mixture, opt.val_patches, opt.seed, conditioned)
    input_psnr = input_psnrs(val_sets)
    recipe_dict = to_dict(recipe)

    def meta() -> dict[str, Any]:
        return {"train_state": dict(state), "recipe": recipe_dict, "val_input_psnr": input_psnr["mean"],
                "val_input_psnr_by_setting": input_psnr}

    def checkpoint() -> None:
        save_warmstart(last, model, meta(), optimizer=optimizer.state_dict(), generator=generator.get_state())
        save_warmstart(out / "warmstart.pt", model, meta())

    def step() -> tuple[dict[str, Tensor], dict[str, Any]]:
        phase = model.phase_at(state["step"], opt.steps)
        if phase != state["phase"]:
            state["phase"], state["phase_start"] = phase, state["step"]
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(opt, state["step"] - state["phase_start"], opt.steps - state["phase_start"])
        hq = repeat_some(as_rgb(train_source.sample(batch, generator).float()), data.repeated, generator)
        lq, cond = synthesize_mixture(hq, mixture, data.groups, generator, conditioned)
        if cond is not None and data.unknown_probability > 0:
            cond = drop_unknown(cond, data.unknown_probability, generator)
        with forward_precision(opt.precision):
            terms = model.loss_terms(hq, lq, generator, phase, cond=cond)
        return terms, {"phase": phase}

    def validate(record: dict[str, Any]) -> None:
        scores = validate_all(model, val_sets, opt.seed)
        record["val_psnr"], record["val_psnr_by_setting"] = scores["mean"], scores
        record["val_input_psnr"] = input_psnr["mean"]
        best = state["best_val_psnr"]
        if record["phase"] == model.phases[-1] and (best is None or record["val_psnr"] > best):
            # best.pt's card reads these fields; without them it would show the last final() of a resumed run
            state.update(best_val_psnr=scores["mean"], val_psnr=scores["mean"], val_psnr_by_setting=scores)
            save_warmstart(out / "best.pt", model, meta())

    def final() -> dict[str, Any]:
        scores = validate_all(model, val_sets, opt.seed)
        return {"val_psnr": scores["mean"], "val_psnr_by_setting": scores, "val_input_psnr": input_psnr["mean"]}

    bar = tqdm(total=opt.steps, initial=state["step"], disable=not progress or not world.is_main, desc=recipe.method,
               dynamic_ncols=True)
    model.train()
    cadence = Cadence(opt.steps, opt.max_minutes, opt.grad_clip, opt.log_every, opt.val_every, opt.checkpoint_every,
                      opt.spike_factor)
    try:
        return run_training(state, optimizer, list(model.parameters()), cadence, out / "log.jsonl", bar, step,
                            validate, checkpoint, final, world)
    finally:
        world.close()
