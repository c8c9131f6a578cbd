"""What the learned warm starts share: the model contract, its self-describing checkpoints, and the
Initializer that runs a loaded model.

A :class:`WarmStartModel` knows its training loss and its few-step inference; it works on 3-channel images
whose missing pixels were already filled (:func:`prepare_input`), in training and at restore time alike, so
the network never sees holes. A checkpoint stores ``{"method": ..., **config}`` beside the weights: loading
needs no flags.
"""

from __future__ import annotations

import dataclasses
import functools
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from degradations import Degradation
from degradations.registry import Registry
from flowprior.conditioning import acting_members, condition_maps, describe
from flowprior.errors import UsageError
from flowprior.prior.checkpoint import load_module, save_checkpoint
from flowprior.warmstart.base import Initializer, initializer_factory
from flowprior.warmstart.collaborative import collaborative_blend
from flowprior.warmstart.consistency import ROUNDING_STD, consistent_with_input, white_noise_variance
from flowprior.warmstart.ensemble import ensemble_passes, first_orientation
from flowprior.warmstart.identity import fill_missing_pixels
from flowprior.warmstart.sure import (
    away_from_the_bounds,
    probe,
    shrink_towards_input,
    shrunk_divergence,
)
from flowprior.warmstart.wiener import wiener_blend

#: model types by their ``method``, the name their checkpoints store (filled by :func:`register_method`)
METHODS: Registry[type[WarmStartModel]] = Registry("warm-start method")


def train_command(method: str) -> str:
    """The command that trains a checkpoint for ``method`` (quoted in error messages)."""
    return f"flowprior train warmstart --method {method} --recipe warmstart-{method}"


def register_method(cls: type[WarmStartModel]) -> type[WarmStartModel]:
    """Class decorator: make a model type loadable from checkpoints under ``cls.method``."""
    return METHODS.add(cls.method, cls)


def available_methods() -> list[str]:
    return METHODS.names()


def gaussian_like(x: Tensor, generator: torch.Generator) -> Tensor:
    """N(0, I) noise shaped like ``x``, drawn on the CPU (a seed gives the same draw on every device)."""
    return torch.randn(x.shape, generator=generator, dtype=torch.float32).to(device=x.device, dtype=x.dtype)


def uniform_times_like(x: Tensor, generator: torch.Generator, low: float = 0.0) -> Tensor:
    """(B,) times uniform on (low, 1]; ``1 - U[0, 1)`` never returns ``low`` itself (IR-Flow divides by t)."""
    u = torch.rand(x.shape[0], generator=generator, dtype=torch.float32)
    return (1.0 - (1.0 - low) * u).to(device=x.device, dtype=x.dtype)


def balance_weights(per_sample: Tensor, power: float, floor: float = 1.5e-5) -> Tensor:
    """Detached per-sample weights ``(loss_i + floor)^-power`` scaled to mean 1 (see :func:`balanced_mean`)."""
    weight = (per_sample.detach().float() + floor).pow(-power)
    return (weight / weight.mean()).to(per_sample.dtype)


def balanced_mean(per_sample: Tensor, power: float = 0.0, floor: float = 1.5e-5) -> Tensor:
    """Mean of per-sample losses, each sample's gradient weighted by ``(loss_i + floor)^-power``.

    ``power = 0`` is the plain mean. ``power = 1`` gives every sample the gradient of ``log(loss_i + floor)``, that
    is, equal weight per dB. A plain MSE over a mixture of σ 0–50 and JPEG q 5–95 lets the heavy samples, whose
    errors are 10–100x larger, drive the gradient, while the light ones are where archives live. The weights are
    detached and scaled to mean 1 over the batch, so the loss keeps the MSE's scale (Adam's moments and the
    gradient clip stay calibrated on resume). ``floor`` (default (1/255)^2) bounds the weight as the error goes to
    0, so a clean sample cannot take over the batch.
    """
    if power == 0:
        return per_sample.mean()
    return (per_sample * balance_weights(per_sample, power, floor)).mean()


def broadcast_time(t: Tensor) -> Tensor:
    """(B,) -> (B, 1, 1, 1)."""
    return t.reshape(-1, 1, 1, 1)


class WarmStartModel(nn.Module, ABC):
    """A trainable warm start: ``loss_terms`` for training, ``restore`` for inference.

    Subclasses set ``method`` and ``config_class`` (a dataclass) and register with :func:`register_method`.
    """

    method: ClassVar[str] = ""
    config_class: ClassVar[type] = object
    #: training phases in order; a model with several (FlowIE) says which one a step is in (:meth:`phase_at`)
    phases: ClassVar[tuple[str, ...]] = ("main",)

    def __init__(self, config):
        super().__init__()
        self.config = config

    def phase_at(self, step: int, total_steps: int) -> str:
        """The training phase of ``step`` out of ``total_steps``."""
        return self.phases[0]

    @abstractmethod
    def loss_terms(self, hq: Tensor, lq: Tensor, generator: torch.Generator,
                   phase: str = "main", cond: Tensor | None = None) -> dict[str, Tensor]:
        """Batch-mean loss terms for clean ``hq`` and filled degraded ``lq`` (both (B, 3, H, W) in [0, 1]),
        including the weighted total under ``"loss"``. ``cond``: the degradation maps
        (:func:`flowprior.conditioning.condition_maps`), exactly when the network is conditioned."""

    @abstractmethod
    def restore(self, lq: Tensor, generator: torch.Generator, cond: Tensor | None = None) -> Tensor:
        """The few-step estimate of the clean image (not yet clamped), same shape as ``lq``."""

    @property
    def conditioned(self) -> bool:
        """Whether the network reads the degradation maps (models embedded before conditioning do not)."""
        return getattr(self.config, "cond_channels", 0) > 0

    def config_dict(self) -> dict[str, Any]:
        return {"method": self.method, **dataclasses.asdict(self.config)}


def build_warmstart(config: dict[str, Any]) -> WarmStartModel:
    """Instantiate a model from the ``config`` stored in a checkpoint."""

    config = dict(config)
    method = config.pop("method", None)
    cls = METHODS.find(method)
    if cls is None:
        raise UsageError(f"unknown warm-start method {method!r} (known: {', '.join(available_methods())})")
    try:
        return cls(cls.config_class(**config))
    except TypeError as error:
        raise UsageError(f"checkpoint config does not fit {method}: {error}") from None


def save_warmstart(path: str | Path, model: WarmStartModel, meta: dict[str, Any] | None = None,
                   **extra: Any) -> str:
    """Write a self-describing warm-start checkpoint; returns its sha256."""
    return save_checkpoint(path, model.config_dict(), model.state_dict(), meta, **extra)


def load_warmstart(path: str | Path, expected_sha256: str | None = None) -> WarmStartModel:
    """Load a warm-start checkpoint in eval mode with gradients off (see :func:`load_module`)."""
    return load_module(path, build_warmstart, expected_sha256)


def prepare_input(y: Tensor, degradation: Degradation, params: dict[str, Tensor]) -> Tensor:
    """The network input for a degraded batch: float32, 3 channels, missing pixels filled, in [0, 1]."""
    x = y.float()
    mask = degradation.observed_mask(params)
    if mask is not None:
        x = fill_missing_pixels(x, mask.to(device=x.device, dtype=x.dtype))
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return x.clamp(0, 1)


def _load_shared(path: str | Path, expected_sha256: str | None) -> WarmStartModel:
    """Loaded once per process for every restore that asks (batch restoration builds an initializer per image).
    Sharing is safe: loaded models are frozen (eval mode, no gradients) and never mutated. The file's size and
    modification time are part of the key, so a checkpoint rewritten in place is loaded afresh."""
    path = Path(path).resolve()
    stat = path.stat() if path.is_file() else None
    key = (str(path), stat and (stat.st_size, stat.st_mtime_ns))
    return _load_cached(key, expected_sha256)


@functools.lru_cache(maxsize=4)
def _load_cached(key: tuple, expected_sha256: str | None) -> WarmStartModel:
    return load_warmstart(key[0], expected_sha256)


def embedded_warmstart(method: str) -> tuple[Path | None, str | None]:
    """(path, sha256) of the warm start the package ships for ``method``, or (None, None)."""
    from flowprior.weights import EMBEDDED, embedded_path, warmstart_name

    return embedded_path(warmstart_name(method)) if warmstart_name(method) in EMBEDDED else (None, None)


def damage_kind(degradation: Degradation, params: dict[str, Tensor] | None = None) -> str:
    """The acting members' names in order (:func:`~flowprior.conditioning.acting_members`: no identities, no mask
    that hides nothing when ``params`` are given), a non-Gaussian noise with its kind: ``"noise"``,
    ``"mask+noise+jpeg"``, ``"noise(poisson_gaussian)"``: what a specialist warm start is chosen by."""
    names = []
    for _, member in acting_members(degradation, params):
        kind = getattr(member, "kind", "gaussian") if member.name == "noise" else "gaussian"
        names.append(member.name if kind == "gaussian" else f"{member.name}({kind})")
    return "+".join(names) or "identity"


def is_learned(init: str) -> bool:
    """Whether the registered initializer ``init`` runs a trained network (a :class:`LearnedInitializer`)."""
    factory = initializer_factory(init)
    return isinstance(factory, type) and issubclass(factory, LearnedInitializer)


class LearnedInitializer(Initializer):
    """Runs a loaded :class:`WarmStartModel`. Subclasses set ``name`` (= the model's method) and register.

    Args:
        checkpoint: a warm-start checkpoint trained with ``flowprior train warmstart``; None loads the embedded
            one for this method (``flowprior.weights.EMBEDDED["warmstart-<method>"]``) when the package ships one.
        seed: seeds the noise of stochastic samplers (ResFlow's y, FlowIE's start): the same seed and input
            give bit-identical outputs.
        expected_sha256: refuse a checkpoint file with a different hash.
        unknown: quantities (``"noise"``, ``"jpeg"``) the conditioned network is told are unknown, whatever the
            operator's params say (blind use); see :mod:`flowprior.conditioning`.
        ensemble: average the network over this many orientations of the input (1, 2, 4 or 8;
            :mod:`flowprior.warmstart.ensemble`): up to 8× the time for a lower error.
        shrink: with known white Gaussian noise alone, blend the network's output with its input by the weight
            Stein's unbiased risk estimate says is best (:mod:`flowprior.warmstart.sure`; two more single passes).
        wiener: with known white Gaussian noise alone of σ at most this (0-255 scale), move the (blended) network
            output towards an empirical Wiener filter that takes it as its pilot, by SURE's weight
            (:mod:`flowprior.warmstart.wiener`; two Wiener filters, no network pass); 0 never does.
        collaborative: likewise, move it towards BM3D's estimate computed on its own by SURE's weight
            (:mod:`flowprior.warmstart.collaborative`), in place of the Wiener step; 0 never does.

    With no checkpoint, a degradation of a kind listed in :attr:`specialists` runs that embedded specialist
    instead of the general model (loaded on first use); ``last_model`` names the embedded model that ran.
    """

    #: embedded models fine-tuned on one kind of damage alone (:func:`damage_kind` -> embedded name), run in
    #: place of the general one when no checkpoint is given; a subclass lists its own
    specialists: ClassVar[dict[str, str]] = {}

    def __init__(self, checkpoint: str | Path | None = None, seed: int = 0,
                 expected_sha256: str | None = None, unknown: tuple[str, ...] = (), ensemble: int = 1,
                 shrink: bool = True, wiener: float = 0.0, collaborative: float = 0.0):
        super().__init__()
        self.unknown = tuple(unknown)
        self.ensemble = ensemble
        self.shrink = shrink
        self.wiener = wiener
        self.collaborative = collaborative
        #: what the network was given on the last call (:func:`flowprior.conditioning.describe`), for the sidecar
        self.last_condition: dict | None = None
        #: SURE's α of each network pass of the last call (empty when no blend ran: the damage is not white noise)
        self.last_shrink: list[float] = []
        #: per network pass of the last call, SURE's weight on the Wiener estimate (0: not used; empty: the damage
        #: is not known white noise or the step is off)
        self.last_wiener: list[float] = []
        #: per network pass of the last call, SURE's weight on the collaborative estimate (as ``last_wiener``)
        self.last_collaborative: list[float] = []
        embedded = checkpoint is None and expected_sha256 is None
        if embedded:
            checkpoint, expected_sha256 = embedded_warmstart(self.name)
        #: the embedded model that ran on the last call (None: a checkpoint given by the caller)
        self.last_model: str | None = None
        self._embedded = embedded and checkpoint is not None
        if checkpoint is None:
            raise UsageError(f"the {self.name!r} warm start needs a trained checkpoint: set the restore "
                             f"recipe key init_checkpoint (e.g. --set init_checkpoint=PATH); train one with "
                             f"`{train_command(self.name)}`")
        self.model = _load_shared(checkpoint, expected_sha256)
        if self.model.method != self.name:
            raise UsageError(f"{checkpoint} holds a {self.model.method!r} warm start, not {self.name!r}; "
                             f"use --init {self.model.method}")
        self.seed = seed

    #: images with more pixels than this run through the network in blocks (bounded memory on large scans)
    max_block_pixels: ClassVar[int] = 512 * 512
    block: ClassVar[int] = 384  # block side, before the halo
    halo: ClassVar[int] = 32  # context rows/columns on each side of a block, cut off afterwards

    @classmethod
    def pixels_at_once(cls, height: int, width: int) -> int:
        """Pixels the network takes in one pass on a ``height`` x ``width`` image: its activation memory grows with
        this (the whole image, or one block with its halo)."""
        if height * width <= cls.max_block_pixels:
            return height * width
        side = cls.block + 2 * cls.halo
        return min(height, side) * min(width, side)

    def model_for(self, degradation: Degradation, params: dict[str, Tensor] | None = None) -> WarmStartModel:
        """The embedded specialist for this kind of damage when there is one (and no checkpoint was given), else
        the loaded model; sets ``last_model``."""
        from flowprior.weights import EMBEDDED, embedded_path, warmstart_name

        if not self._embedded:
            return self.model
        name = self.specialists.get(damage_kind(degradation, params))
        if name is None or name not in EMBEDDED:
            self.last_model = warmstart_name(self.name)
            return self.model
        self.last_model = name
        return _load_shared(*embedded_path(name))

    @torch.no_grad()
    def forward(self, y: Tensor, degradation: Degradation, params: dict[str, Tensor]) -> Tensor:
        self.last_shrink, self.last_wiener, self.last_collaborative = [], [], []
        lq = prepare_input(y, degradation, params)
        model = self.model_for(degradation, params).to(lq.device)
        cond = None
        if model.conditioned:
            cond = condition_maps(degradation, params, tuple(lq.shape), self.unknown).to(lq.device)
            self.last_condition = describe(cond)
        generator = torch.Generator().manual_seed(self.seed)
        white = (self.shrink or self.wiener > 0 or self.collaborative > 0) and y.shape[1] == 3
        variance = white_noise_variance(degradation, params, self.unknown) if white else None
        x0 = self._run_blocked(model, lq, cond, generator, variance).clamp(0, 1)
        if y.shape[1] == 1:
            x0 = x0.mean(1, keepdim=True)
        if model.conditioned:  # the models embedded before conditioning were measured without it
            x0 = consistent_with_input(x0, y.to(x0.dtype), degradation, params, self.unknown)
        return x0.to(y.dtype)

    def _run_blocked(self, model: WarmStartModel, lq: Tensor, cond: Tensor | None,
                     generator: torch.Generator, variance: Tensor | None = None) -> Tensor:
        """The model on the whole image, or block by block with a halo of context when the image is large: the
        network's activations (~1.7 kB a pixel, ``flowprior.batch.memory.NETWORK_BYTES_PER_PIXEL``) would otherwise
        take ~85 GB on a 50-megapixel scan. Blocks run in raster order from one generator, so a seed still fixes
        the output."""
        height, width = lq.shape[-2:]
        if height * width <= self.max_block_pixels:
            return self._network(model, lq, cond, generator, variance)
        out = torch.empty_like(lq)
        for top in range(0, height, self.block):
            for left in range(0, width, self.block):
                y0, x0 = max(0, top - self.halo), max(0, left - self.halo)
                y1, x1 = min(height, top + self.block + self.halo), min(width, left + self.block + self.halo)
                piece_cond = None if cond is None else cond[..., y0:y1, x0:x1]
                piece = self._network(model, lq[..., y0:y1, x0:x1], piece_cond, generator, variance)
                bottom, right = min(height, top + self.block), min(width, left + self.block)
                out[..., top:bottom, left:right] = piece[..., top - y0:bottom - y0, left - x0:right - x0]
        return out

    def _network(self, model: WarmStartModel, lq: Tensor, cond: Tensor | None, generator: torch.Generator,
                 variance: Tensor | None = None) -> Tensor:
        """One pass (with the self-ensemble); with the ``variance`` of known white noise, blended with its input by
        SURE (:mod:`flowprior.warmstart.sure`), the α of each pass kept in ``last_shrink``, then, where the noise
        is light enough, moved towards the collaborative estimate (``collaborative``) or else the Wiener one."""
        state = generator.get_state()
        batch = lq.shape[0]
        grouped = self._noise_at_most(self.collaborative, variance, batch)
        def ensemble_pass(image: Tensor, maps: Tensor | None) -> Tensor:
            return model.restore(image, generator, maps)

        x0, first = ensemble_passes(ensemble_pass, lq, cond, self.ensemble)
        if variance is None:
            return x0

        def single_pass(image: Tensor) -> Tensor:  # the ensemble's first orientation, with the same draws
            return first_orientation(lambda i, maps: model.restore(i, torch.Generator().set_state(state), maps),
                                     image, cond, self.ensemble)

        light = self._noise_at_most(self.wiener, variance, batch) & ~grouped
        probed, alpha = None, torch.ones(batch, dtype=torch.float64)
        if self.shrink or bool(light.any()) or bool(grouped.any()):  # else no step would use the probe (a pass)
            # the ensemble's first pass is the single pass at lq: the probe does not run it again
            probed = probe(single_pass, lq, first)
            if self.shrink:
                x0, alpha = shrink_towards_input(x0, lq, single_pass, variance, probed=probed)
                self.last_shrink.extend(round(float(a), 4) for a in alpha)

        def towards_collaborative(x: Tensor) -> tuple[Tensor, Tensor]:
            inside = away_from_the_bounds(x, variance)
            return collaborative_blend(x, lq, variance, shrunk_divergence(alpha, probed, inside), inside, grouped)

        x0 = self._refined(self.collaborative, grouped, self.last_collaborative, x0, towards_collaborative)
        return self._refined(self.wiener, light, self.last_wiener, x0,
                             lambda x: wiener_blend(x, lq, variance, probed, alpha))

    def _noise_at_most(self, sigma: float, variance: Tensor | None, batch: int) -> Tensor:
        """(B,) whether each image's noise is at most ``sigma`` (0-255 scale, the 8-bit rounding aside); all False
        when ``sigma`` is 0 (the step is off) or the noise is not known white noise."""
        if variance is None or sigma <= 0:
            return torch.zeros(batch, dtype=torch.bool)
        limit = (sigma / 255.0) ** 2 + ROUNDING_STD**2
        return variance.reshape(-1).expand(batch) <= limit + 1e-12

    @staticmethod
    def _refined(limit: float, where: Tensor, record: list[float], x0: Tensor,
                 blend: Callable[[Tensor], tuple[Tensor, Tensor]]) -> Tensor:
        """``x0`` moved by ``blend(x0)`` -> (moved, β per image) on the ``where`` images, else ``x0`` (the
        collaborative step, :func:`~flowprior.warmstart.collaborative.collaborative_blend`, or the Wiener step,
        :func:`~flowprior.warmstart.wiener.wiener_blend`); β per image appended to ``record`` (0: not moved;
        nothing when the step is off, ``limit`` 0)."""
        if limit <= 0:
            return x0
        if not bool(where.any()):
            record.extend(0.0 for _ in where)
            return x0
        blended, beta = blend(x0)
        record.extend(round(float(b), 4) if keep else 0.0 for b, keep in zip(beta, where))
        return torch.where(where.reshape(-1, 1, 1, 1), blended, x0)
