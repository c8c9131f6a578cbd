"""Latent MAP restoration: coarse-to-fine optimization of a flow prior's latents against a data term."""

from flowprior.solver.map import LatentMAPSolver, SolveResult
from flowprior.solver.objective import Energy
from flowprior.solver.schedule import Stage, coarse_to_fine

__all__ = ["Energy", "LatentMAPSolver", "SolveResult", "Stage", "coarse_to_fine"]
