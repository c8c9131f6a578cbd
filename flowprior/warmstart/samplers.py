"""Few-step samplers of the learned warm starts: Euler, FlowIE's mean value sampling, IR-Flow's step rule.

A velocity field is a callable ``velocity(x, t) -> v`` with ``t`` of shape (B,); time runs in whichever
direction the schedule says (ResFlow integrates from t = 1 down to 0, FlowIE from 0 up to 1). Schedules are
Python floats so that a step's size is exact and independent of the tensors' dtype.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise

import torch
from torch import Tensor

Velocity = Callable[[Tensor, Tensor], Tensor]


def uniform_times(steps: int, start: float = 0.0, end: float = 1.0) -> list[float]:
    """``steps + 1`` evenly spaced times from ``start`` to ``end`` (both included).

    Example:
        >>> uniform_times(4, 1.0, 0.0)
        [1.0, 0.75, 0.5, 0.25, 0.0]
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return [start + (end - start) * i / steps for i in range(steps + 1)]


def _time(x: Tensor, t: float) -> Tensor:
    return torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)


def euler_sample(velocity: Velocity, x: Tensor, times: Sequence[float]) -> Tensor:
    """Integrate ``dx/dt = velocity(x, t)`` by explicit Euler over ``times`` (``len(times) - 1`` calls).

    Shape:
        x: (B, ...). Output: like x.
    """
    for t, t_next in pairwise(times):
        x = x + (t_next - t) * velocity(x, _time(x, t))
    return x


def mean_value_sampling(velocity: Velocity, x_start: Tensor, m: int, points: int = 5) -> Tensor:
    """FlowIE's mean value sampling: Euler up to index ``m`` of a ``points``-point schedule on [0, 1], then
    return the start plus one full unit step of the velocity evaluated there.

    The velocity at ``t_m`` on the Euler path stands in for the mean velocity over the whole path (a mean
    value theorem argument), so the endpoint is ``x_start + velocity(x_m, t_m)``. It costs ``m + 1`` network
    calls (4 for FlowIE's m = 3 on 5 points). On a straight-line field it is exact for every ``m``.

    Args:
        velocity: ``(x, t) -> v`` with t of shape (B,).
        x_start: the state at t = 0.
        m: index of the evaluation point, ``0 <= m < points - 1`` (``m = 0`` is a single Euler step).
        points: schedule points, ``t_i = i / (points - 1)``.

    Shape:
        x_start: (B, ...). Output: like x_start.

    Example:
        >>> x0 = torch.ones(1, 1)
        >>> mean_value_sampling(lambda x, t: x, x0, m=2)  # x_2 = 1.25**2, result 1 + 1.5625
        tensor([[2.5625]])
    """
    if points < 2 or not 0 <= m < points - 1:
        raise ValueError(f"need points >= 2 and 0 <= m < points - 1, got m={m}, points={points}")
    times = uniform_times(points - 1)
    x_m = euler_sample(velocity, x_start, times[: m + 1])
    return x_start + velocity(x_m, _time(x_m, times[m]))


def irflow_step(x: Tensor, displacement: Tensor, s: float, s_next: float) -> Tensor:
    """IR-Flow's step rule ``x ← x − (1 − s′/s)·d`` from time ``s`` to ``s′ < s``.

    With ``x_s = s·LQ + (1 − s)·HQ`` and ``d = s·(LQ − HQ)`` the rule lands exactly on ``x_{s′}``, for any
    pair of times; ``s′ = 0`` gives ``x − d = HQ``.

    Args:
        x: the state at time s.
        displacement: the predicted cumulative displacement d at (x, s).
        s: current time, > 0.
        s_next: next time, ``0 <= s_next <= s``.
    """
    if not 0.0 <= s_next <= s or s <= 0.0:
        raise ValueError(f"need 0 <= s_next <= s and s > 0, got s={s}, s_next={s_next}")
    return x - (1.0 - s_next / s) * displacement


def irflow_sample(displacement: Velocity, lq: Tensor, steps: int) -> Tensor:
    """IR-Flow inference: start at ``x_1 = LQ`` and apply :func:`irflow_step` on a uniform schedule to 0."""
    x = lq
    times = uniform_times(steps, 1.0, 0.0)
    for s, s_next in pairwise(times):
        x = irflow_step(x, displacement(x, _time(x, s)), s, s_next)
    return x
