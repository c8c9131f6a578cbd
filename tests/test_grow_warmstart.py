"""Growing a trained lean warm start by a full-resolution branch (flowprior/warmstart/grow.py)."""

from __future__ import annotations

import pytest
import torch

from flowprior.errors import UsageError
from flowprior.warmstart.grow import grow_checkpoint
from flowprior.warmstart.irflow import IRFlow, IRFlowConfig
from flowprior.warmstart.learned import build_warmstart
from tests.conftest import natural_crop

CONFIG = {"arch": "lean", "width": 8, "depth": 1, "unshuffle": 2, "cond_channels": 7, "steps": 1,
          "t1_fraction": 1.0, "consistency_weight": 0.0}


def _trained_payload(steps: int = 3) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """A small lean IR-Flow after a few Adam steps on astronaut patches, as a last.pt payload."""
    torch.manual_seed(0)
    model = IRFlow(IRFlowConfig(**CONFIG))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    hq = natural_crop(32, 32)
    lq = (hq + 0.1 * torch.randn(hq.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    cond = torch.rand((1, 7, 32, 32), generator=torch.Generator().manual_seed(2))
    for _ in range(steps):
        optimizer.zero_grad()
        model.loss_terms(hq, lq, torch.Generator().manual_seed(3), cond=cond)["loss"].backward()
        optimizer.step()
    payload = {"config": model.config_dict(), "state_dict": model.state_dict(), "meta": {"train_state": {"step": 3}},
               "optimizer": optimizer.state_dict()}
    return payload, lq, cond


def test_the_grown_network_predicts_what_the_trained_one_did_and_keeps_adam_state():
    payload, lq, cond = _trained_payload()
    grown = grow_checkpoint(payload, top_width=4)
    before, after = build_warmstart(payload["config"]), build_warmstart(grown["config"])
    before.load_state_dict(payload["state_dict"])
    after.load_state_dict(grown["state_dict"])
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        torch.testing.assert_close(after.restore(lq, g, cond=cond), before.restore(lq, g, cond=cond), rtol=0, atol=0)
    optimizer = torch.optim.Adam(after.parameters(), lr=1e-3)
    optimizer.load_state_dict(grown["optimizer"])  # refuses a group whose parameter count differs
    old = len(payload["optimizer"]["param_groups"][0]["params"])
    assert len(optimizer.state) == old and grown["meta"] == payload["meta"]


def test_the_branch_is_wired_into_the_output():
    payload, lq, cond = _trained_payload(steps=1)
    model = build_warmstart(grow_checkpoint(payload, top_width=4)["config"])
    with torch.no_grad():
        base = model.net(lq, torch.ones(1), cond=cond)
        model.net.top.out.bias.fill_(0.25)
        torch.testing.assert_close(model.net(lq, torch.ones(1), cond=cond) - base, torch.full_like(base, 0.25))


def test_a_network_that_cannot_grow_is_refused():
    payload, *_ = _trained_payload(steps=1)
    with pytest.raises(UsageError, match="already"):
        grow_checkpoint(grow_checkpoint(payload, top_width=4), top_width=4)
    timeunet = IRFlow(IRFlowConfig(width=8, depth=1, cond_channels=7))
    with pytest.raises(UsageError, match="lean"):
        grow_checkpoint({"config": timeunet.config_dict(), "state_dict": timeunet.state_dict()}, top_width=4)
