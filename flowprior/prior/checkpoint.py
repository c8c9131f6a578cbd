"""Self-describing checkpoints: ``{"format", "config", "state_dict", "meta"}`` — loading needs no architecture flags.

The sha256 of the whole file identifies a model (recorded in model cards and in every restore sidecar); passing
``expected_sha256`` refuses a file that does not match.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from flowprior.errors import UsageError
from flowprior.hashing import file_sha256

FORMAT = "flowprior-checkpoint-v1"


def save_checkpoint(path: str | Path, config: dict[str, Any], state_dict: dict[str, Any],
                    meta: dict[str, Any] | None = None, **extra: Any) -> str:
    """Write atomically (temp file + rename, so a kill never leaves half a checkpoint); return the file's sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "config": config, "state_dict": state_dict, "meta": meta or {}, **extra}
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(handle)
    try:
        torch.save(payload, tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; checkpoints are shared read-only data
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return file_sha256(path)


def read_checkpoint(path: str | Path, expected_sha256: str | None = None) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"checkpoint not found: {path}")
    if expected_sha256 is not None:
        actual = file_sha256(path)
        if actual != expected_sha256:
            raise UsageError(f"checkpoint {path} has sha256 {actual[:16]}…, expected {expected_sha256[:16]}…; "
                             "the file is corrupt or not the model it claims to be")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 -- torch raises many types for a damaged file
        raise UsageError(f"cannot read checkpoint {path}: {error}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UsageError(f"{path} is not a flowprior checkpoint")
    return payload


def build_prior(config: dict[str, Any]) -> nn.Module:
    """Instantiate a prior from the ``config`` stored in a checkpoint."""
    from flowprior.prior.glow import Glow, GlowConfig

    config = dict(config)
    name = config.pop("name", "glow")
    if name != "glow":
        raise UsageError(f"unknown prior type {name!r} (known: glow)")
    return Glow(GlowConfig(**config))


def load_module(path: str | Path, build: Callable[[dict[str, Any]], nn.Module],
                expected_sha256: str | None = None) -> nn.Module:
    """Load a checkpoint into ``build(config)`` in eval mode with gradients off; ``.meta`` and ``.sha256`` say
    where it came from (models are frozen at restore time: restoration optimizes latents, not weights)."""
    payload = read_checkpoint(path, expected_sha256)
    module = build(payload["config"])
    module.load_state_dict(payload["state_dict"])
    module.eval().requires_grad_(False)
    module.meta = payload["meta"]
    module.sha256 = expected_sha256 or file_sha256(path)
    return module


def load_prior(path: str | Path, expected_sha256: str | None = None) -> nn.Module:
    """Load a prior checkpoint (see :func:`load_module`)."""
    return load_module(path, build_prior, expected_sha256)
