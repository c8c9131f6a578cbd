"""What the training loops (prior, warm starts, defect detector) share: opening a run and resuming it, the loop
itself (time limit, logging, validation and checkpoint cadence), graceful stops and NaN-guarded optimizer steps."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from flowprior.distributed import Distributed
from flowprior.recipe import to_dict


@dataclass
class RunFolder:
    """An opened run: the process group, the run folder and this rank's share of the batch."""

    world: Distributed
    out: Path
    batch: int


def open_run(recipe) -> RunFolder:
    """Create ``recipe.output``, write the resolved recipe there (rank 0: a run folder always says how it was made),
    set the thread count (``recipe.optim.threads``) and split ``recipe.optim.batch_size`` over the ranks."""
    world = Distributed()
    out = Path(recipe.output)
    out.mkdir(parents=True, exist_ok=True)
    if world.is_main:
        (out / "recipe.yaml").write_text(yaml.safe_dump(to_dict(recipe), sort_keys=False))
    if recipe.optim.threads:
        torch.set_num_threads(recipe.optim.threads)
    return RunFolder(world, out, world.share(recipe.optim.batch_size))


def resume_from(payload: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                generator: torch.Generator, state: dict[str, Any]) -> None:
    """Continue a run from its read ``last.pt`` (:func:`~flowprior.prior.checkpoint.read_checkpoint`): weights,
    optimizer, generator and counters."""
    model.load_state_dict(payload["state_dict"])
    optimizer.load_state_dict(payload["optimizer"])
    generator.set_state(payload["generator"])
    state.update(payload["meta"]["train_state"])


# forward-pass precisions (torch.autocast on CPU); the weights, the gradients and Adam's moments stay float32
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def forward_precision(precision: str):
    """The context a training step's forward pass runs in: ``"bf16"`` autocasts convolutions and matmuls to
    bfloat16, which oneDNN runs on the CPU's AMX / AVX512-BF16 units (the embedded warm start's step took half the
    time, docs/benchmarks.md); bfloat16 keeps float32's range, so no loss scaling is needed."""
    if precision not in PRECISIONS:
        raise ValueError(f"optim.precision must be one of {sorted(PRECISIONS)}, not {precision!r}")
    dtype = PRECISIONS[precision]
    return torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def make_adam(model: torch.nn.Module, lr: float, fast: bool) -> torch.optim.Adam:
    """Adam over ``model``'s parameters; ``fast`` puts the convolutions' weights (and so their gradients and
    moments) in channels-last order, the layout oneDNN computes in, and uses the fused update: measured 1.25x
    faster training on 2 CPU cores, the same update up to rounding."""
    if fast:
        model.to(memory_format=torch.channels_last)
    return torch.optim.Adam(model.parameters(), lr=lr, fused=fast or None)


def reseed_rank(generator: torch.Generator, seed: int, world: Distributed, step: int) -> None:
    """Every rank but 0 draws its own share of each batch (rank 0's weights are everyone's)."""
    if world.rank:
        generator.manual_seed(seed + 1000 * world.rank + step)


class StopFlag:
    """Turns SIGTERM/SIGINT into a graceful stop so a killed run still leaves a checkpoint."""

    def __init__(self):
        self.stop = False

    def __enter__(self):
        self._old = {s: signal.signal(s, self._handler) for s in (signal.SIGTERM, signal.SIGINT)}
        return self

    def _handler(self, *_):
        self.stop = True

    def __exit__(self, *_):
        for s, handler in self._old.items():
            signal.signal(s, handler)


def count_skip(state: dict[str, Any], limit: int = 50) -> None:
    """Count a skipped batch; ``limit`` consecutive ones mean the run diverged, which is an error."""
    state["skipped"] += 1
    state["consecutive_skips"] = state.get("consecutive_skips", 0) + 1
    if state["consecutive_skips"] >= limit:
        raise FloatingPointError(f"{limit} consecutive batches gave a non-finite loss or gradient; lower optim.lr")


SPIKE_WARMUP = 50  # accepted steps before the spike test starts (the loss falls fast at first)


def is_spike(loss: float, state: dict[str, Any], factor: float | None) -> bool:
    """Whether ``loss`` exceeds ``factor`` times the running mean of the accepted losses (``state["loss_ema"]``).

    One batch whose loss is thousands of times the usual, clipped to norm ``grad_clip``, is still the largest
    gradient Adam has seen by orders of magnitude: its second moment then shrinks every later step for about
    1 / (1 - beta2) = 1000 steps, and the run stalls (a norm-free warm start, from scratch: loss 3e-4 -> 8577 at one
    step, docs/benchmarks.md). Such a batch is skipped instead."""
    ema = state.get("loss_ema")
    warm = ema is not None and ema > 0 and state.get("ema_steps", 0) >= SPIKE_WARMUP  # a mean for a positive loss
    return factor is not None and warm and loss > factor * ema


def track_loss(loss: float, state: dict[str, Any]) -> None:
    ema = state.get("loss_ema")
    state["loss_ema"] = loss if ema is None else 0.98 * ema + 0.02 * loss
    state["ema_steps"] = state.get("ema_steps", 0) + 1


def guarded_step(parameters: Iterable[torch.nn.Parameter], optimizer: torch.optim.Optimizer, loss: torch.Tensor,
                 grad_clip: float, state: dict[str, Any], world: Distributed | None = None,
                 spike_factor: float | None = None) -> float | None:
    """Backward, clip and step unless the loss or the gradient is not finite, or the loss is a spike
    (:func:`is_spike`); then count a skip and return None.

    Returns the gradient norm before clipping. ``state["step"]`` advances only on a real step. Under ``torchrun``
    the gradients are averaged over the ranks before clipping, and a batch is skipped on every rank when it is not
    finite (or a spike) on one, so the ranks take identical steps.
    """
    world = world or Distributed()
    parameters = list(parameters)
    optimizer.zero_grad(set_to_none=True)
    if not world.all_finite(loss.detach()):
        count_skip(state)
        return None
    value = float(loss.detach())
    # every rank has the same spike_factor, so without one no rank enters the collective
    if spike_factor is not None and world.any_true(is_spike(value, state, spike_factor)):
        state["spikes"] = state.get("spikes", 0) + 1
        count_skip(state)
        return None
    loss.backward()
    world.average_gradients(parameters)
    grad_norm = torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
    if not torch.isfinite(grad_norm):
        optimizer.zero_grad(set_to_none=True)
        count_skip(state)
        return None
    state["consecutive_skips"] = 0
    track_loss(value, state)
    optimizer.step()
    state["step"] += 1
    return float(grad_norm)


@dataclass
class Cadence:
    """How long a run goes and how often it logs, validates and checkpoints (optimizer steps)."""

    steps: int
    max_minutes: float | None
    grad_clip: float
    log_every: int
    val_every: int
    checkpoint_every: int
    spike_factor: float | None = None  # skip a batch whose loss exceeds this many times the running mean


def run_training(state: dict[str, Any], optimizer: torch.optim.Optimizer, parameters: list[torch.nn.Parameter],
                 cadence: Cadence, log_path: Path, bar,
                 step: Callable[[], tuple[dict[str, torch.Tensor], dict[str, Any]]],
                 validate: Callable[[dict[str, Any]], None],
                 checkpoint: Callable[[], None],
                 final: Callable[[], dict[str, Any]], world: Distributed | None = None) -> dict[str, Any]:
    """The training loop shared by the prior and the warm starts; returns ``state`` when the run stops.

    Stops at ``cadence.steps``, after ``cadence.max_minutes`` of accumulated wall time (``state["seconds"]``
    carries over a resume) or on SIGTERM/SIGINT, always leaving a checkpoint and a final log line.

    Args:
        state: the resumable counters (``step``, ``skipped``, ``seconds``, ...); updated in place.
        step: sets the learning rate, draws a batch and returns ``(loss terms incl. "loss", extra log fields)``.
        validate: adds held-out metrics to a log record (and may save the best weights).
        checkpoint: writes the resumable checkpoint.
        final: held-out metrics for the last line and the returned state.
        world: the process group under ``torchrun``; only its rank 0 validates, logs and checkpoints.
    """
    world = world or Distributed()
    if not world.is_main:  # the other ranks step in lockstep and write nothing
        validate, checkpoint, final, log_path = (lambda record: None), (lambda: None), dict, Path(os.devnull)
    started = time.monotonic() - state["seconds"]
    with StopFlag() as flag, open(log_path, "a") as log:
        while state["step"] < cadence.steps:
            out_of_time = cadence.max_minutes is not None and time.monotonic() - started > 60 * cadence.max_minutes
            if world.any_true(flag.stop or out_of_time):  # every rank stops at the same step
                break
            terms, fields = step()
            grad_norm = guarded_step(parameters, optimizer, terms["loss"], cadence.grad_clip, state, world,
                                     cadence.spike_factor)
            if grad_norm is None:
                continue
            state["seconds"] = time.monotonic() - started
            bar.update(1)
            values = {k: round(float(v.detach()), 6) for k, v in terms.items()}
            bar.set_postfix({**values, "skip": state["skipped"]}, refresh=False)
            number = state["step"]
            head = {"step": number, "time": round(state["seconds"], 1), **fields}
            record = None
            if number % cadence.log_every == 0:
                record = {**head, **values, "grad_norm": round(grad_norm, 4), "skipped": state["skipped"]}
            if number % cadence.val_every == 0 or number == cadence.steps:
                record = record or head
                validate(record)
            if record:
                log.write(json.dumps(record) + "\n")
                log.flush()
            if number % cadence.checkpoint_every == 0:
                checkpoint()
        bar.close()
        state["seconds"] = time.monotonic() - started
        state.update(final())
        if world.world > 1:
            state["ranks"], state["ranks_in_sync"] = world.world, world.in_sync(parameters)
        checkpoint()
        log.write(json.dumps({"step": state["step"], "final": True, **state}) + "\n")
    return state
