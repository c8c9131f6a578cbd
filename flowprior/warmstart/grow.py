"""Grow a trained lean warm start by a full-resolution branch without losing what it learned.

The branch (:class:`~flowprior.warmstart.leannet.FullResolutionBranch`) is registered after every other
parameter and its output layer starts at zero, so the grown network computes exactly what the trained one did,
the trained parameters keep their positions in Adam's state, and the branch's new parameters start with fresh
moments (Adam initializes a parameter's state at its first step). A resumed run then trains the whole network.
"""

from __future__ import annotations

from typing import Any

from flowprior.errors import UsageError
from flowprior.warmstart.learned import build_warmstart


def grow_checkpoint(payload: dict[str, Any], top_width: int) -> dict[str, Any]:
    """A copy of a resumable checkpoint payload (``read_checkpoint`` of a run's ``last.pt``) whose model has a
    ``top_width``-channel full-resolution branch. Raises UsageError for a model that cannot grow one."""
    config = dict(payload["config"])
    if config.get("arch") != "lean" or config.get("unshuffle", 1) < 2:
        raise UsageError("only a lean network on pixel-unshuffled input can grow a full-resolution branch")
    if config.get("top_width", 0):
        raise UsageError(f"the network already has a full-resolution branch ({config['top_width']} channels)")
    config["top_width"] = int(top_width)
    model = build_warmstart(config)
    missing, unexpected = model.load_state_dict(payload["state_dict"], strict=False)
    if unexpected or any(".top." not in f".{key}" for key in missing):
        raise UsageError(f"checkpoint does not fit the grown network (missing {missing}, unexpected {unexpected})")
    grown = {**payload, "config": model.config_dict(), "state_dict": model.state_dict()}
    if "optimizer" in payload:
        grown["optimizer"] = _extend_param_groups(payload["optimizer"], len(list(model.parameters())))
    return grown


def _extend_param_groups(optimizer: dict[str, Any], count: int) -> dict[str, Any]:
    """Adam's state with the one parameter group listing ``count`` parameters; the new ones have no state."""
    groups = optimizer["param_groups"]
    if len(groups) != 1:
        raise UsageError("a grown optimizer state needs exactly one parameter group")
    known = list(groups[0]["params"])
    if known != list(range(len(known))) or count < len(known):
        raise UsageError("optimizer parameters are not the model's parameters in order")
    return {"state": dict(optimizer["state"]), "param_groups": [{**groups[0], "params": list(range(count))}]}
