"""Flow priors: the Glow model, its training losses and self-describing checkpoints."""

from flowprior.prior.base import Prior
from flowprior.prior.checkpoint import load_prior, save_checkpoint
from flowprior.prior.glow import Glow, GlowConfig

__all__ = ["Glow", "GlowConfig", "Prior", "load_prior", "save_checkpoint"]
