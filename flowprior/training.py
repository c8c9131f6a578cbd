"""What the training loops (prior, warm starts) share: graceful stops and NaN-guarded optimizer steps."""

from __future__ import annotations

import signal
from collections.abc import Iterable
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
