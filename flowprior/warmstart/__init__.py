"""Warm starts: a first estimate x0 of the clean image, from which the latent MAP solver starts.

Importing this package registers every initializer: ``identity`` (no learning), ``inverse`` (blur and
downsampling undone in closed form, noise by the embedded IR-Flow) and the learned ``resflow``, ``irflow`` and
``flowie``, which load checkpoints written by ``flowprior train warmstart``.
"""

from flowprior.warmstart.base import Initializer, available_initializers, get_initializer
from flowprior.warmstart.flowie import FlowIE, FlowIEConfig  # registers "flowie"
from flowprior.warmstart.identity import IdentityInitializer, fill_missing_pixels
from flowprior.warmstart.inverse import InverseInitializer  # registers "inverse"
from flowprior.warmstart.irflow import IRFlow, IRFlowConfig  # registers "irflow"
from flowprior.warmstart.learned import (
    LearnedInitializer,
    WarmStartModel,
    available_methods,
    build_warmstart,
    load_warmstart,
    save_warmstart,
)
from flowprior.warmstart.resflow import ResFlow, ResFlowConfig  # registers "resflow"

__all__ = [
    "FlowIE", "FlowIEConfig", "IRFlow", "IRFlowConfig", "IdentityInitializer", "Initializer", "InverseInitializer",
    "LearnedInitializer", "ResFlow", "ResFlowConfig", "WarmStartModel", "available_initializers",
    "available_methods", "build_warmstart", "fill_missing_pixels", "get_initializer", "load_warmstart",
    "save_warmstart",
]
