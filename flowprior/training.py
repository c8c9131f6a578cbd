"""What the training loops (prior, warm starts) share: the loop itself (time limit, logging, validation and
checkpoint cadence), graceful stops and NaN-guarded optimizer steps."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


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


def guarded_step(parameters: Iterable[torch.nn.Parameter], optimizer: torch.optim.Optimizer, loss: torch.Tensor,
                 grad_clip: float, state: dict[str, Any]) -> float | None:
    """Backward, clip and step unless the loss or the gradient is not finite (then count a skip, return None).

    Returns the gradient norm before clipping. ``state["step"]`` advances only on a real step.
    """
    parameters = list(parameters)
    optimizer.zero_grad(set_to_none=True)
    if not torch.isfinite(loss):
        count_skip(state)
        return None
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
    if not torch.isfinite(grad_norm):
        optimizer.zero_grad(set_to_none=True)
        count_skip(state)
        return None
    state["consecutive_skips"] = 0
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


def run_training(state: dict[str, Any], optimizer: torch.optim.Optimizer, parameters: list[torch.nn.Parameter],
                 cadence: Cadence, log_path: Path, bar,
                 step: Callable[[], tuple[dict[str, torch.Tensor], dict[str, Any]]],
                 validate: Callable[[dict[str, Any]], None],
                 checkpoint: Callable[[], None],
                 final: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The training loop shared by the prior and the warm starts; returns ``state`` when the run stops.

    Stops at ``cadence.steps``, after ``cadence.max_minutes`` of accumulated wall time (``state["seconds"]``
    carries over a resume) or on SIGTERM/SIGINT, always leaving a checkpoint and a final log line.

    Args:
        state: the resumable counters (``step``, ``skipped``, ``seconds``, ...); updated in place.
        step: sets the learning rate, draws a batch and returns ``(loss terms incl. "loss", extra log fields)``.
        validate: adds held-out metrics to a log record (and may save the best weights).
        checkpoint: writes the resumable checkpoint.
        final: held-out metrics for the last line and the returned state.
    """
    started = time.monotonic() - state["seconds"]
    with StopFlag() as flag, open(log_path, "a") as log:
        while state["step"] < cadence.steps and not flag.stop:
            if cadence.max_minutes is not None and time.monotonic() - started > 60 * cadence.max_minutes:
                break
            terms, fields = step()
            grad_norm = guarded_step(parameters, optimizer, terms["loss"], cadence.grad_clip, state)
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
        checkpoint()
        log.write(json.dumps({"step": state["step"], "final": True, **state}) + "\n")
    return state
