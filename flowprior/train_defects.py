"""Training loop of the learned defect detector (:mod:`flowprior.estimate.defect_net`).

Each step draws clean patches from the photo pool, damages each group of the batch with a member of the recipe's
mixture (holes or scratches filled black, then noise and JPEG; members without a mask teach what is *not* a
defect), stores the result as 8-bit like a file would, and takes one step on the binary cross-entropy between
the network's logits and the missing-pixel mask. Resumable and logged like the other trainers
(:func:`flowprior.training.run_training`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from degradations import Degradation
from flowprior.estimate.defect_net import DefectNet, DefectNetConfig, save_defect_net
from flowprior.prior.checkpoint import read_checkpoint
from flowprior.recipe import to_dict
from flowprior.train_prior import make_patch_sources
from flowprior.train_warmstart import (
    WarmstartDataSection,
    WarmstartOptimSection,
    as_rgb,
    build_degradations,
    learning_rate,
    mixture_groups,
)
from flowprior.training import Cadence, open_run, reseed_rank, resume_from, run_training


@dataclass
class DefectLossSection:
    pos_weight: float = 2.0  # defects are a few % of the pixels; missing one costs a visible hole in the output


@dataclass
class DefectTrainRecipe:
    """``data`` is the warm starts' section (its ``unknown_probability`` is not used here)."""

    network: DefectNetConfig = field(default_factory=DefectNetConfig)
    data: WarmstartDataSection = field(default_factory=WarmstartDataSection)
    loss: DefectLossSection = field(default_factory=DefectLossSection)
    optim: WarmstartOptimSection = field(default_factory=WarmstartOptimSection)
    output: str = "runs/defects"


def damaged_pairs(hq: Tensor, degradation: Degradation, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """(8-bit damaged image, missing mask: 1 = defect) for a batch of clean patches."""
    params = degradation.sample_params(tuple(hq.shape), generator)
    damaged = (degradation.apply(hq, params).clamp(0, 1) * 255).round() / 255
    observed = degradation.observed_mask(params)
    missing = torch.zeros_like(hq[:, :1]) if observed is None else 1.0 - observed.to(hq.dtype)
    return damaged, missing


def damaged_mixture(hq: Tensor, mixture, groups: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    images, masks = [], []
    for rows, operator in mixture_groups(hq.shape[0], mixture, groups, generator):
        image, missing = damaged_pairs(hq[rows], operator, generator)
        images.append(image)
        masks.append(missing)
    return torch.cat(images), torch.cat(masks)


@torch.no_grad()
def detection_scores(model: DefectNet, sets: dict[str, tuple[Tensor, Tensor]]) -> dict[str, float]:
    """Pixel F1 at probability 0.5 per mixture member (members without defects: 1 − the false-positive share),
    and their mean (``"mean"``)."""
    was_training = model.training
    model.eval()
    scores = {}
    for name, (image, missing) in sets.items():
        found = model(image) > 0
        truth = missing > 0.5
        if truth.any():
            hits = float((found & truth).sum())
            scores[name] = round(2 * hits / max(float(found.sum() + truth.sum()), 1.0), 4)
        else:
            scores[name] = round(1.0 - float(found.float().mean()), 4)
    model.train(was_training)
    scores["mean"] = round(sum(scores.values()) / len(sets), 4)
    return scores


def train_defects(recipe: DefectTrainRecipe, resume: bool = False, progress: bool = True,
                  sources=None) -> dict[str, Any]:
    """Train (or resume) the detector; writes ``last.pt``, ``defects.pt``, ``best.pt`` (highest mean held-out
    score) and ``log.jsonl`` into ``recipe.output``. Runs unchanged under ``torchrun`` (each rank draws its share of
    the batch; :class:`~flowprior.distributed.Distributed`)."""
    run = open_run(recipe)
    world, out, batch = run.world, run.out, run.batch
    opt, data = recipe.optim, recipe.data
    mixture = build_degradations(data)
    train_source, val_source = sources or make_patch_sources(data, opt.seed)
    model = DefectNet(recipe.network)
    optimizer = torch.optim.Adam(model.parameters(), lr=opt.lr)
    generator = torch.Generator().manual_seed(opt.seed)
    state = {"step": 0, "skipped": 0, "seconds": 0.0, "best_val_score": None}
    last = out / "last.pt"
    if resume and last.exists():
        resume_from(read_checkpoint(last), model, optimizer, generator, state)
    reseed_rank(generator, opt.seed, world, state["step"])
    world.broadcast(model.parameters())
    val_generator = torch.Generator().manual_seed(opt.seed + 1)
    val_sets = {name: damaged_pairs(as_rgb(val_source.sample(opt.val_patches, val_generator).float()), op,
                                    val_generator) for name, op, _ in mixture}
    pos_weight = torch.tensor(recipe.loss.pos_weight)

    def meta() -> dict[str, Any]:
        return {"train_state": dict(state), "recipe": to_dict(recipe)}

    def checkpoint() -> None:
        save_defect_net(last, model, meta(), optimizer=optimizer.state_dict(), generator=generator.get_state())
        save_defect_net(out / "defects.pt", model, meta())

    def step() -> tuple[dict[str, Tensor], dict[str, Any]]:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(opt, state["step"], opt.steps)
        hq = as_rgb(train_source.sample(batch, generator).float())
        image, missing = damaged_mixture(hq, mixture, data.groups, generator)
        loss = F.binary_cross_entropy_with_logits(model(image), missing, pos_weight=pos_weight)
        return {"loss": loss}, {}

    def validate(record: dict[str, Any]) -> None:
        scores = detection_scores(model, val_sets)
        record["val_score"], record["val_score_by_setting"] = scores["mean"], scores
        if state["best_val_score"] is None or scores["mean"] > state["best_val_score"]:
            state["best_val_score"] = scores["mean"]
            save_defect_net(out / "best.pt", model, meta())

    def final() -> dict[str, Any]:
        scores = detection_scores(model, val_sets)
        return {"val_score": scores["mean"], "val_score_by_setting": scores}

    bar = tqdm(total=opt.steps, initial=state["step"], disable=not progress or not world.is_main, desc="defects",
               dynamic_ncols=True)
    model.train()
    cadence = Cadence(opt.steps, opt.max_minutes, opt.grad_clip, opt.log_every, opt.val_every, opt.checkpoint_every)
    try:
        return run_training(state, optimizer, list(model.parameters()), cadence, out / "log.jsonl", bar, step,
                            validate, checkpoint, final, world)
    finally:
        world.close()
