"""Tests for scripts/average_warmstart.py: the weight average is the entrywise mean of one network's checkpoints."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from flowprior.prior.checkpoint import read_checkpoint, save_checkpoint

_PATH = Path(__file__).resolve().parents[1] / "scripts" / "average_warmstart.py"
_spec = importlib.util.spec_from_file_location("average_warmstart", _PATH)
aw = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(aw)


def _state(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"w": torch.randn(3, 4, generator=g), "count": torch.tensor(seed)}


def test_mean_is_entrywise_and_leaves_inputs_alone():
    states = [_state(s) for s in (1, 2, 3)]
    before = [s["w"].clone() for s in states]
    out = aw.average_state_dicts(states)
    expected = (states[0]["w"].double() + states[1]["w"].double() + states[2]["w"].double()) / 3
    torch.testing.assert_close(out["w"], expected.float())
    assert out["w"].dtype == torch.float32
    assert int(out["count"]) == 3  # integer buffers: the last checkpoint's
    for state, w in zip(states, before):
        assert torch.equal(state["w"], w)


def test_different_networks_are_refused():
    with pytest.raises(SystemExit):
        aw.average_state_dicts([_state(1), {"v": torch.zeros(2)}])


def _write(path: Path, seed: int, step: int, width: int = 8) -> None:
    meta = {"train_state": {"step": step}}
    save_checkpoint(path, {"method": "irflow", "width": width}, _state(seed), meta)


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(_PATH), *args], check=False, capture_output=True, text=True)


def test_cli_writes_the_mean_with_its_steps(tmp_path):
    _write(tmp_path / "a.pt", 1, 100)
    _write(tmp_path / "b.pt", 2, 200)
    done = _run(str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "-o", str(tmp_path / "avg.pt"))
    assert done.returncode == 0, done.stderr
    avg = read_checkpoint(tmp_path / "avg.pt")
    assert avg["meta"]["averaged_steps"] == [100, 200]
    torch.testing.assert_close(avg["state_dict"]["w"], (_state(1)["w"] + _state(2)["w"]) / 2)


def test_cli_refuses_mixed_configs_and_repeated_steps(tmp_path):
    _write(tmp_path / "a.pt", 1, 100)
    _write(tmp_path / "b.pt", 2, 200, width=16)
    _write(tmp_path / "c.pt", 3, 100)
    assert _run(str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "-o", str(tmp_path / "x.pt")).returncode != 0
    assert _run(str(tmp_path / "a.pt"), str(tmp_path / "c.pt"), "-o", str(tmp_path / "x.pt")).returncode != 0
    assert not (tmp_path / "x.pt").exists()
