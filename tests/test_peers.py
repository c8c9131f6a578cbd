"""The Table 1 peers (benchmarks/peers.py, benchmarks/dip.py) and the table's report helpers."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks.dip import deep_image_prior
from benchmarks.peers import PEERS, available_peers, run_peer
from benchmarks.table1_report import markdown_table, quantize
from benchmarks.table1_tune import record_result
from flowprior.metrics import psnr

CLASSICAL = ("bm3d", "nlm", "tv", "wavelet")


def _gradient(size: int = 48) -> torch.Tensor:
    """A smooth colour gradient (1, 3, size, size) in [0.1, 0.9]."""
    t = torch.linspace(0, 1, size, dtype=torch.float64)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    return (0.1 + 0.8 * torch.stack([xx, yy, (xx + yy) / 2])[None]).float()


def _noisy(clean: torch.Tensor, sigma: float = 25.0, seed: int = 0) -> torch.Tensor:
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed)) * sigma / 255
    return (clean + noise).clamp(0, 1)


@pytest.mark.parametrize("name", CLASSICAL)
def test_classical_peer_denoises_a_noisy_gradient(name):
    if name not in available_peers():
        pytest.skip(f"{name} needs {PEERS[name].requires}")
    clean = _gradient()
    noisy = _noisy(clean)
    before = noisy.clone()
    restored = run_peer(name, noisy, None, "noise25")  # factor-1 defaults: sigma 25 (tv: weight 25/255)
    assert restored.shape == clean.shape and restored.dtype == clean.dtype
    assert torch.equal(noisy, before), "the peer must not modify its input"
    assert 0.0 <= float(restored.min()) and float(restored.max()) <= 1.0
    gain = float(psnr(clean, restored) - psnr(clean, noisy))
    assert gain > 4.0, f"{name} gained only {gain:.2f} dB over the noisy input (20.4 dB)"


# Biharmonic inpainting is exact on a linear ramp up to the light TV; fill_missing_pixels is a blur-based fill.
@pytest.mark.parametrize(("name", "tolerance"), [("tv", 0.01), ("input", 0.1)])
def test_holes_are_filled_before_denoising(name, tolerance):
    clean = _gradient()
    mask = torch.ones(1, 1, 48, 48)
    mask[..., 10:20, 25:35] = 0
    degraded = clean * mask  # missing pixels are black, as the mask operator writes them
    restored = run_peer(name, degraded, mask, "multi", {"weight": 0.01} if name == "tv" else {})
    hole = mask.expand_as(clean) == 0
    error = (restored - clean)[hole].abs().max()
    assert error < tolerance, f"{name}: hole pixels are {float(error):.3f} away from the smooth gradient"
    if name == "input":  # observed pixels are passed through untouched
        assert torch.equal(restored[~hole], degraded[~hole])


def test_input_without_mask_is_the_degraded_image():
    noisy = _noisy(_gradient())
    assert torch.equal(run_peer("input", noisy, None, "noise25"), noisy)


def test_unknown_peer_names_the_known_ones():
    with pytest.raises(KeyError, match="bm3d"):
        run_peer("bm4d", _gradient(), None, "noise5")


def test_every_peer_has_a_default_for_every_setting():
    from benchmarks.settings import SETTINGS

    for name, peer in PEERS.items():
        for setting in SETTINGS:
            grid = peer.grid(setting)
            assert (grid == []) == (name == "input")
            assert peer.default_params(setting) in (grid or [{}])
    assert PEERS["bm3d"].default_params("noise25") == {"sigma": 25.0}  # factor 1 of the setting's level


def _tiny_dip(y, mask=None, seed=0, iterations=4, snapshots=()):
    return deep_image_prior(y, mask, iterations=iterations, width=8, depth=2, input_channels=4, seed=seed,
                            snapshots=snapshots)


def test_dip_is_deterministic_per_seed_and_fits():
    y = _noisy(_gradient(32), sigma=10)
    first = _tiny_dip(y, seed=3, iterations=20, snapshots=(0, 20))
    again = _tiny_dip(y, seed=3, iterations=20)
    other = _tiny_dip(y, seed=4, iterations=20)
    assert torch.equal(first.image, again.image)
    assert not torch.allclose(first.image, other.image)
    assert torch.equal(first.snapshots[20], first.image)
    assert first.losses[-1] < 0.5 * first.losses[0], "20 Adam steps should at least halve the MSE"
    assert float(psnr(y, first.image)) > float(psnr(y, first.snapshots[0]))


def test_dip_ignores_missing_pixels():
    y = _noisy(_gradient(32), sigma=10)
    mask = torch.ones(1, 1, 32, 32)
    mask[..., 8:16, 8:16] = 0
    garbage = y.clone()
    garbage[..., 8:16, 8:16] = 1.0 - garbage[..., 8:16, 8:16]
    assert torch.equal(_tiny_dip(y, mask).image, _tiny_dip(garbage, mask).image)
    assert not torch.equal(_tiny_dip(y).image, _tiny_dip(garbage).image)


def test_dip_rejects_snapshots_past_the_end():
    with pytest.raises(ValueError, match="snapshots"):
        _tiny_dip(_gradient(32), iterations=2, snapshots=(5,))


def test_markdown_table_means_bold_best_and_marks_partial_cells():
    rows = [
        {"images": "256crops", "image": im, "setting": "noise25", "method": m, "psnr": p, "ssim": 0.5,
         "ms_ssim": None, "seconds": 1.0}
        for im, m, p in [("a", "input", 20.0), ("b", "input", 22.0), ("a", "tv", 25.0), ("b", "tv", 27.0),
                         ("a", "bm3d", 30.0)]
    ]
    table = markdown_table(rows, ("input", "tv", "bm3d"))
    assert "| input | 21.00 / 0.500 / – |" in table
    assert "| tv | 26.00 / 0.500 / – |" in table
    assert "| bm3d | **30.00** / 0.500 / –† |" in table
    assert "noise25 (n=2)" in table


def test_quantize_rounds_to_8_bits():
    x = torch.tensor([0.0, 0.5 / 255 + 1e-6, 1.2, -0.1])
    assert torch.equal(quantize(x), torch.tensor([0.0, 1 / 255, 1.0, 0.0], dtype=torch.float64))


def test_tune_results_of_separate_calls_merge_into_one_file(tmp_path):
    out = tmp_path / "peer_params.json"
    record_result(out, {"call": 1}, "dip", "jpeg10", {"params": {"iterations": 100}, "tuned_on": {"crops": 3}})
    record_result(out, {"call": 2}, "dip", "noise5", {"params": {"iterations": 400}, "tuned_on": {"crops": 3}})
    record_result(out, {"call": 2}, "tv", "noise5", {"params": {"weight": 0.1}})
    record_result(out, {"call": 3}, "dip", "jpeg10", {"params": {"iterations": 200}})  # a re-tune replaces
    data = json.loads(out.read_text())
    assert data["params"] == {"dip": {"jpeg10": {"iterations": 200}, "noise5": {"iterations": 400}},
                              "tv": {"noise5": {"weight": 0.1}}}
    assert data["tuned_on"]["dip"] == {"jpeg10": {"crops": 3}, "noise5": {"crops": 3}}
    assert data["meta"] == {"call": 3}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["peer_params.json", "peer_params.lock"]
