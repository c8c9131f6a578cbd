"""Training loop of the learned warm starts (ResFlow, IR-Flow, FlowIE) on pairs synthesized on the fly.

Each step draws clean patches from the photo pool, degrades them with a seeded operator whose parameters are
drawn from ranges (default: JPEG q ∈ [10, 70], Gaussian σ ∈ [0, 15] on the 0–255 scale, square holes covering
0–10 %), fills the holes as restoration will (:func:`~flowprior.warmstart.learned.prepare_input`) and takes
one step on the method's loss. Resumable, NaN-safe and logged as JSON lines like :mod:`flowprior.train_prior`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor
from tqdm import tqdm

from degradations import Degradation, parse
from flowprior.errors import UsageError
from flowprior.metrics import psnr
from flowprior.prior.checkpoint import read_checkpoint
from flowprior.recipe import to_dict
from flowprior.train_prior import DataSection, make_patch_sources
from flowprior.training import Cadence, run_training
from flowprior.warmstart.flowie import FlowIEConfig
from flowprior.warmstart.irflow import IRFlowConfig
from flowprior.warmstart.learned import WarmStartModel, build_warmstart, prepare_input, save_warmstart
from flowprior.warmstart.resflow import ResFlowConfig

METHODS = ("resflow", "irflow", "flowie")


def default_degradation_params() -> dict[str, Any]:
    return {"jpeg.quality": "10:70", "noise.sigma": "0:15", "mask.coverage": "0:0.1"}


@dataclass
class WarmstartDataSection(DataSection):
    """The prior's patch data, plus the degradation that makes the degraded side of each training pair."""

    degradation: str = "jpeg+noise+mask"  # the operator chain that makes the degraded side of each pair
    params: dict[str, Any] = field(default_factory=default_degradation_params)  # ranges, "lo:hi"


@dataclass
class WarmstartOptimSection:
    lr: float = 2e-4
    warmup_steps: int = 200  # linear warmup, restarted at the start of each phase (FlowIE has two)
    grad_clip: float = 1.0
    batch_size: int = 16
    steps: int = 10000
    max_minutes: float | None = None  # stop (with a checkpoint) after this much wall time
    checkpoint_every: int = 100
    log_every: int = 25
    val_every: int = 250
    val_patches: int = 32
    seed: int = 0
    threads: int | None = None


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


def build_degradation(data: WarmstartDataSection) -> Degradation:
    try:
        return parse(data.degradation, flatten_params(data.params))
    except ValueError as error:
        raise UsageError(f"data.degradation / data.params: {error}") from None


def synthesize_pairs(hq: Tensor, degradation: Degradation, generator: torch.Generator) -> Tensor:
    """The filled degraded side of a batch of clean patches, with parameters drawn from ``generator``."""
    params = degradation.sample_params(tuple(hq.shape), generator)
    return prepare_input(degradation.apply(hq, params), degradation, params)


@torch.no_grad()
def validation_psnr(model: WarmStartModel, hq: Tensor, lq: Tensor, seed: int, chunk: int = 16) -> float:
    """Mean PSNR (dB) of the model's few-step estimate on fixed held-out pairs, with fixed sampler noise."""
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed + 2)
    out = torch.cat([model.restore(lq[i:i + chunk], generator) for i in range(0, lq.shape[0], chunk)])
    model.train(was_training)
    return round(float(psnr(hq, out.clamp(0, 1)).clamp(max=100).mean()), 4)  # identical pairs give +inf


def train_warmstart(recipe: WarmstartTrainRecipe, resume: bool = False, progress: bool = True,
                    sources=None) -> dict[str, Any]:
    """Train (or resume) the recipe's warm start; returns a summary.

    Writes into ``recipe.output``: ``last.pt`` (resumable: + optimizer and generator state), ``warmstart.pt``
    (the latest weights), ``best.pt`` (the highest held-out PSNR in the final phase), ``log.jsonl`` and
    ``recipe.yaml`` (the resolved recipe).

    Args:
        recipe: the training recipe.
        resume: continue from ``last.pt`` when it exists.
        progress: show a tqdm bar.
        sources: ``(train, val)`` objects with ``sample(batch, generator) -> (B, C, P, P)``; default: the
            recipe's data section.
    """
    out = Path(recipe.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipe.yaml").write_text(yaml.safe_dump(to_dict(recipe), sort_keys=False))
    opt = recipe.optim
    if opt.threads:
        torch.set_num_threads(opt.threads)
    degradation = build_degradation(recipe.data)
    train_source, val_source = sources or make_patch_sources(recipe.data, opt.seed)
    model = recipe.build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=opt.lr)
    generator = torch.Generator().manual_seed(opt.seed)
    state = {"step": 0, "skipped": 0, "seconds": 0.0, "best_val_psnr": None, "phase": model.phases[0],
             "phase_start": 0}
    last = out / "last.pt"
    if resume and last.exists():
        payload = read_checkpoint(last)
        if payload["config"].get("method") != recipe.method:
            raise UsageError(f"{last} holds a {payload['config'].get('method')!r} run, not {recipe.method!r}")
        model.load_state_dict(payload["state_dict"])
        optimizer.load_state_dict(payload["optimizer"])
        generator.set_state(payload["generator"])
        state.update(payload["meta"]["train_state"])

    def draw(source, batch: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        hq = source.sample(batch, gen).float()
        hq = hq.expand(-1, 3, -1, -1).contiguous() if hq.shape[1] == 1 else hq
        return hq, synthesize_pairs(hq, degradation, gen)

    val_hq, val_lq = draw(val_source, opt.val_patches, torch.Generator().manual_seed(opt.seed + 1))
    input_psnr = round(float(psnr(val_hq, val_lq).clamp(max=100).mean()), 4)
    recipe_dict = to_dict(recipe)

    def checkpoint() -> None:
        meta = {"train_state": dict(state), "recipe": recipe_dict, "val_input_psnr": input_psnr}
        save_warmstart(last, model, meta, optimizer=optimizer.state_dict(), generator=generator.get_state())
        save_warmstart(out / "warmstart.pt", model, meta)

    def step() -> tuple[dict[str, Tensor], dict[str, Any]]:
        phase = model.phase_at(state["step"], opt.steps)
        if phase != state["phase"]:
            state["phase"], state["phase_start"] = phase, state["step"]
        warm = (state["step"] - state["phase_start"] + 1) / max(1, opt.warmup_steps)
        for group in optimizer.param_groups:
            group["lr"] = opt.lr * min(1.0, warm)
        hq, lq = draw(train_source, opt.batch_size, generator)
        return model.loss_terms(hq, lq, generator, phase), {"phase": phase}

    def validate(record: dict[str, Any]) -> None:
        record["val_psnr"] = validation_psnr(model, val_hq, val_lq, opt.seed)
        record["val_input_psnr"] = input_psnr
        best = state["best_val_psnr"]
        if record["phase"] == model.phases[-1] and (best is None or record["val_psnr"] > best):
            state["best_val_psnr"] = record["val_psnr"]
            save_warmstart(out / "best.pt", model, {"train_state": dict(state), "recipe": recipe_dict,
                                                    "val_input_psnr": input_psnr})

    def final() -> dict[str, Any]:
        return {"val_psnr": validation_psnr(model, val_hq, val_lq, opt.seed), "val_input_psnr": input_psnr}

    bar = tqdm(total=opt.steps, initial=state["step"], disable=not progress, desc=recipe.method, dynamic_ncols=True)
    model.train()
    cadence = Cadence(opt.steps, opt.max_minutes, opt.grad_clip, opt.log_every, opt.val_every, opt.checkpoint_every)
    return run_training(state, optimizer, list(model.parameters()), cadence, out / "log.jsonl", bar, step, validate,
                        checkpoint, final)
