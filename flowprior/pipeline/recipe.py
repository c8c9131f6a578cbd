"""The restore recipe: typed settings (solver, tiling, warm start, model, seed, posterior sampler) and how they are
resolved from a recipe file, ``--set`` overrides and ``--steps``; and the prior a recipe names (:func:`load_model`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from flowprior.errors import UsageError
from flowprior.recipe import from_dict, load_recipe, set_dotted, to_dict
from flowprior.solver import Stage, coarse_to_fine

RECIPE_SECTIONS = ("degradation", "params", "solver", "tiling", "init", "init_checkpoint", "init_unknown",
                   "init_ensemble", "init_shrink", "init_wiener", "init_collaborative", "model", "seed", "posterior")


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


POSTERIOR_METHODS = ("mala", "ula")
POSTERIOR_OUTPUTS = ("map", "mean")
POSTERIOR_STARTS = ("laplace", "map")


@dataclass
class PosteriorSection:
    """How to draw posterior samples of a restoration by Langevin dynamics in the flow's latent space.

    Each chain targets ``p(u | y) ∝ exp(-E(u) / temperature)`` with ``E`` the MAP solver's per-tile energy
    (:class:`flowprior.solver.Energy`), started at (or around) the MAP latents. One step is
    ``u' = u - h ∇E(u) / temperature + sqrt(2h) ξ``, ξ ~ N(0, I); MALA accepts it with the Metropolis-Hastings
    ratio (exact target), ULA always does (biased by O(h)). With ``start="map"`` one chain per tile runs
    ``burn_in + samples * thin`` steps and keeps every ``thin``-th state after the burn-in; with ``start="laplace"``
    N chains per tile start at MAP + a draw of the diagonal Laplace approximation and each is kept after
    ``burn_in`` steps (:mod:`flowprior.posterior.chains`).

    The defaults are the settings chosen on validation crops and measured in docs/benchmarks.md ("Posterior
    samples"); ``output`` stays ``"map"`` because the posterior mean of N = 8 cost 0.35-0.65 dB PSNR there at
    temperature 1 and 1.7-1.9 dB at 2. A restore recipe holds them as its
    ``posterior:`` section (``--set posterior.burn_in=10``); ``flowprior restore --samples N`` sets ``samples``.

    Args:
        method: ``"mala"`` (Metropolis-adjusted, exact) or ``"ula"`` (unadjusted).
        samples: N, the samples kept per tile.
        start: ``"laplace"`` (N short chains per tile from Laplace draws around the MAP) or ``"map"`` (one chain
            per tile from the MAP itself).
        step_size: h at the start, in latent units (the latents are standardized: prior N(0, I)); with
            ``precondition``, relative to each latent's own curvature (h = 1 would be a Newton-sized step).
        burn_in: steps discarded first. With ``adapt`` (MALA only), each tile's h is tuned towards
            ``target_accept`` during these steps and frozen after, so the kept samples come from a fixed kernel.
        thin: steps between kept samples (``start="map"``).
        adapt: tune h during the burn-in (MALA).
        precondition: scale each latent's step by the inverse Gauss-Newton curvature of the energy at the start
            (:mod:`flowprior.posterior.preconditioner`); without it, latents inside holes hardly move.
        probes: vector-Jacobian products that estimate that curvature.
        laplace_iterations: with ``start="laplace"``, conjugate-gradient iterations of the start's perturbed
            solve, a draw of the *full* Gauss-Newton Laplace approximation (:mod:`flowprior.posterior.laplace`);
            0 draws the diagonal one (each latent alone). Opt-in: on validation it put no more std in holes and cost
            2-3.5x the sampling; its double-backward graph is not counted by the ``--max-memory`` plan.
        target_accept: the acceptance rate ``adapt`` aims at (0.574 is optimal for MALA in high dimension).
        temperature: 1 samples the posterior the MAP objective defines; > 1 flattens it.
        output: what the restored image is: ``"map"`` (the MAP estimate) or ``"mean"`` (the posterior mean).
        seed: seeds the chains' ``torch.Generator`` (``flowprior restore --samples``; the Python functions use it
            when the caller passes no generator). Apart from the operator's ``seed``, so the same restoration can
            be sampled again with other chains.
    """

    method: str = "mala"
    samples: int = 8
    start: str = "laplace"
    step_size: float = 0.01  # near where adapt settles (0.005-0.03 on validation crops), so a short burn-in suffices
    burn_in: int = 4
    thin: int = 4
    adapt: bool = True
    precondition: bool = True
    probes: int = 4
    laplace_iterations: int = 0
    target_accept: float = 0.574
    # chosen on validation crops (docs/benchmarks.md "Posterior samples"): at 1 the ±2 std coverage was 89-90 %,
    # 2 brings it to ~95 %; the std grows like sqrt(temperature) and its ranks do not change
    temperature: float = 2.0
    output: str = "map"
    seed: int = 0

    def __post_init__(self):
        if self.method not in POSTERIOR_METHODS:
            raise ValueError(f"posterior.method must be one of {POSTERIOR_METHODS}, not {self.method!r}")
        if self.start not in POSTERIOR_STARTS:
            raise ValueError(f"posterior.start must be one of {POSTERIOR_STARTS}, not {self.start!r}")
        if self.output not in POSTERIOR_OUTPUTS:
            raise ValueError(f"posterior.output must be one of {POSTERIOR_OUTPUTS}, not {self.output!r}")
        if self.samples < 1 or self.thin < 1 or self.burn_in < 0 or self.probes < 1 or self.laplace_iterations < 0:
            raise ValueError("posterior: samples >= 1, thin >= 1, burn_in >= 0, probes >= 1 and "
                             "laplace_iterations >= 0 are required")
        if not self.step_size > 0 or not self.temperature > 0 or not 0 < self.target_accept < 1:
            raise ValueError("posterior: step_size > 0, temperature > 0 and 0 < target_accept < 1 are required")

    @property
    def steps(self) -> int:
        """Langevin steps of one chain (each one energy and gradient evaluation of its batch)."""
        return self.burn_in + self.samples * self.thin

    @property
    def copies(self) -> int:
        """Chains run at once per tile: the ensemble's N (``start="laplace"``), else one."""
        return self.samples if self.start == "laplace" else 1

    @property
    def tile_steps(self) -> int:
        """Decode-and-gradient evaluations per tile, its chains together (the sampling's cost in MAP tile-steps):
        each chain's start and steps (an ensemble chain runs its burn-in and one kept step), and the probes, taken
        once per tile (its chains share the start they linearize at); a Gauss-Newton Laplace start adds, per
        chain, one decode at the MAP and a Jacobian-vector and a vector-Jacobian product per CG iteration."""
        per_chain = 1 + (self.burn_in + 1 if self.start == "laplace" else self.steps)
        if self.start == "laplace" and self.laplace_iterations > 0:
            per_chain += 2 * self.laplace_iterations + 1
        probes = self.probes if self.precondition or self.start == "laplace" else 0
        return self.copies * per_chain + probes


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
    # a learned warm start averaged over this many orientations of the input (1, 2, 4, 8): lower error, more time
    init_ensemble: int = 1
    # with known white Gaussian noise alone, blend a learned warm start with its input by SURE's weight
    # (flowprior.warmstart.sure): a loss at sigma 1 becomes a gain; the network is left alone at strong noise
    init_shrink: bool = True
    # with known white Gaussian noise alone of sigma at most this (0-255 scale), move a learned warm start towards an
    # empirical Wiener filter with it as the pilot, by SURE's weight (flowprior.warmstart.wiener); 0 never does
    init_wiener: float = 0.0
    # with known white Gaussian noise alone of sigma at most this, move a learned warm start towards the collaborative
    # filtering of similar blocks (BM3D's estimate) by SURE's weight, in place of the Wiener step
    # (flowprior.warmstart.collaborative); 0 never does
    init_collaborative: float = 0.0
    model: str = "default"  # "default" (embedded) or a checkpoint path
    seed: int = 0
    # how `flowprior restore --samples N` samples the posterior around the MAP (the section is inert without it)
    posterior: PosteriorSection = field(default_factory=PosteriorSection)

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


def load_model(name_or_path: str):
    """The prior a recipe's ``model`` names: ``"default"`` (embedded, checked against its sha256) or a path."""
    from flowprior.prior.checkpoint import load_prior
    from flowprior.weights import embedded_path

    if name_or_path in ("default",):
        path, sha256 = embedded_path(name_or_path)
        return load_prior(path, expected_sha256=sha256)
    return load_prior(name_or_path)
