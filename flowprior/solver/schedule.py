"""Coarse-to-fine schedules: which latent levels are free at each stage of the MAP optimization."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """One stage of the solver.

    Args:
        active: how many levels, counted from the coarsest, are optimized (1 = the top latent only). Finer
            levels stay where they are (initially at their predicted means).
        steps: optimizer steps in this stage.
        lr: step size.
        prior_weight: multiplier of the prior term (1 = the MAP posterior; 0 = data term only).
    """

    active: int
    steps: int
    lr: float = 1.0
    prior_weight: float = 1.0

    def __post_init__(self):
        if self.active < 1 or self.steps < 0 or self.lr <= 0 or self.prior_weight < 0:
            raise ValueError(f"invalid stage {self}: need active >= 1, steps >= 0, lr > 0, prior_weight >= 0")


def coarse_to_fine(num_levels: int, steps_per_stage: int = 50, final_steps: int = 150, lr: float = 1.0,
                   prior_weight: float = 1.0) -> list[Stage]:
    """The paper's schedule: the coarsest level alone, then each finer level added, the last stage with all levels.

    Helminger et al. §3.3: 50 steps per stage and 150 for the final stage with every level free.

    Example:
        >>> [(s.active, s.steps) for s in coarse_to_fine(3)]
        [(1, 50), (2, 50), (3, 150)]
    """
    stages = [Stage(active, steps_per_stage, lr, prior_weight) for active in range(1, num_levels)]
    return stages + [Stage(num_levels, final_steps, lr, prior_weight)]


def total_steps(stages: list[Stage]) -> int:
    return sum(stage.steps for stage in stages)
