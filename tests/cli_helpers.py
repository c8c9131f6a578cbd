"""What the CLI tests share: running ``flowprior`` in-process and a tiny prior checkpoint to restore with."""

from __future__ import annotations

from pathlib import Path

from flowprior.cli import main
from flowprior.prior.checkpoint import save_checkpoint
from tests.test_solver import tiny_prior


def run(capsys, *argv) -> tuple[int, str, str]:
    """``flowprior ARGV`` in this process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def save_tiny_prior(folder: Path) -> Path:
    """A 2-level prior of 32² patches saved as ``folder/tiny.pt`` (seconds to restore with, not a good prior)."""
    prior = tiny_prior(patch=32, levels=2)
    save_checkpoint(folder / "tiny.pt", prior.config_dict(), prior.state_dict())
    return folder / "tiny.pt"
