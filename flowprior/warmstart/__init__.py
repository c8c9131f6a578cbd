"""Warm starts: a first estimate x0 of the clean image, from which the latent MAP solver starts."""

from flowprior.warmstart.base import Initializer, available_initializers, get_initializer
from flowprior.warmstart.identity import IdentityInitializer, fill_missing_pixels

__all__ = ["IdentityInitializer", "Initializer", "available_initializers", "fill_missing_pixels", "get_initializer"]
