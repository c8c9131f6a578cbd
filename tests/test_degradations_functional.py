"""The pure functions behind the operators: kernels, explicit adjoints, noise statistics, masks, layers."""

from __future__ import annotations

import doctest
import importlib
import math
import pkgutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import degradations
from degradations import functional as fn
from degradations.functional.blur import _pad


def _rand(*shape, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_docstring_examples():
    for info in pkgutil.walk_packages(degradations.__path__, "degradations."):
        result = doctest.testmod(importlib.import_module(info.name))
        assert result.failed == 0, info.name


# --- blur ---------------------------------------------------------------------------------------------------


def test_reflect_indices_match_torch_and_extend_beyond_the_image():
    x = _rand(1, 1, 5, 6)
    torch.testing.assert_close(_pad(x, 3), F.pad(x, (3, 3, 3, 3), mode="reflect"))
    assert fn.reflect_indices(3, 5).tolist() == [1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1]
    assert fn.reflect_indices(1, 2).tolist() == [0] * 5


@pytest.mark.parametrize("hw", [(12, 9), (4, 5)])  # (4, 5): the kernel is larger than the image
def test_blur_explicit_adjoint(hw):
    b, c = 2, 3
    kernel = _rand(b, 9, 9, seed=1)  # asymmetric on purpose: a wrong flip would show
    kernel = kernel / kernel.sum(dim=(1, 2), keepdim=True)
    x, y = _rand(b, c, *hw, seed=2), _rand(b, c, *hw, seed=3)
    lhs = (fn.blur(x, kernel) * y).sum()
    rhs = (x * fn.blur_adjoint(y, kernel)).sum()
    assert abs(float(lhs - rhs)) < 1e-10 * float(lhs.abs())


def test_blur_is_a_convolution_and_keeps_constants():
    x = torch.zeros(1, 1, 9, 9, dtype=torch.float64)
    x[0, 0, 4, 4] = 1.0
    kernel = _rand(1, 3, 3, seed=4)
    torch.testing.assert_close(fn.blur(x, kernel)[0, 0, 3:6, 3:6], kernel[0])  # impulse response = kernel
    flat = torch.full((1, 3, 10, 10), 0.7, dtype=torch.float64)
    torch.testing.assert_close(fn.blur(flat, fn.gaussian_kernel(3.0)[None]), flat)  # no dark borders


def test_kernels():
    g = fn.gaussian_kernel(2.0)
    r = torch.arange(g.shape[0], dtype=torch.float64) - g.shape[0] // 2
    assert g.shape == (13, 13) and float(g.sum()) == pytest.approx(1.0)
    assert float((g.sum(1) * r**2).sum()) == pytest.approx(
        4.0, rel=0.02
    )  # variance sigma^2 (3-sigma truncation: -1.2%)
    assert torch.equal(fn.gaussian_kernel(0.0), torch.ones(1, 1, dtype=torch.float64))
    d = fn.disk_kernel(4.0)
    assert float(d.sum()) == pytest.approx(1.0) and d.shape == (9, 9)
    assert 1.0 / float(d[4, 4]) == pytest.approx(math.pi * 16, rel=0.02)  # total coverage = disk area
    assert d[4, 4] > 0 and d[0, 0] == 0
    m = fn.motion_kernel(7.0, 0.0)
    assert float(m[m.shape[0] // 2].sum()) == pytest.approx(1.0) and int((m > 0).sum()) == 7
    v = fn.motion_kernel(7.0, 90.0)
    torch.testing.assert_close(v, m.T)
    stacked = fn.stack_kernels([fn.gaussian_kernel(1.0), fn.gaussian_kernel(2.0)])
    assert stacked.shape == (2, 13, 13) and torch.allclose(
        stacked.sum(dim=(1, 2)), torch.ones(2, dtype=torch.float64)
    )


# --- noise --------------------------------------------------------------------------------------------------


def test_gaussian_noise_level_and_seeds():
    seeds = torch.tensor([1, 2, 1])
    n = fn.gaussian_noise((3, 3, 64, 64), torch.tensor([10.0, 10.0, 10.0]), seeds)
    assert float(n[0].std()) == pytest.approx(10 / 255, rel=0.05)
    assert torch.equal(n[0], n[2]) and not torch.equal(n[0], n[1])  # the seed, not the batch slot, decides


def test_uniform_and_poisson_gaussian_statistics():
    u = fn.uniform_noise((1, 1, 128, 128), torch.tensor([-20.0]), torch.tensor([10.0]), torch.tensor([0]))
    assert float(u.min()) >= -20 / 255 and float(u.max()) <= 10 / 255
    assert float(u.std()) == pytest.approx(
        float(fn.uniform_std(torch.tensor([-20.0]), torch.tensor([10.0]))), rel=0.03
    )
    x = torch.full((1, 1, 128, 128), 0.5, dtype=torch.float64)
    y = fn.poisson_gaussian(x, torch.tensor([20.0]), torch.tensor([5.0]), torch.tensor([3]))
    expected = float(fn.poisson_gaussian_std(torch.tensor([20.0]), torch.tensor([5.0])))
    assert float(y.std()) == pytest.approx(expected, rel=0.05)
    assert float(y.mean()) == pytest.approx(0.5, abs=0.01)


# --- masks --------------------------------------------------------------------------------------------------


def test_random_holes_reach_the_coverage():
    g = torch.Generator().manual_seed(0)
    for coverage in (0.05, 0.3):
        m = fn.random_holes(64, 80, coverage, 10, g)
        missing = 1 - float(m.mean())
        assert coverage <= missing + 0.5 / (64 * 80) and missing < coverage + 0.1
    assert torch.equal(fn.random_holes(8, 8, 0.0, 3, g), torch.ones(8, 8, dtype=torch.float64))


def test_strokes_are_thin():
    m = fn.random_strokes(64, 64, 3, 2.0, torch.Generator().manual_seed(0))
    missing = 1 - float(m.mean())
    assert 0.005 < missing < 0.2
    assert set(torch.unique(m).tolist()) == {0.0, 1.0}


def test_load_mask_convention(tmp_path):
    arr = np.zeros((4, 6), dtype=np.uint8)
    arr[:, 3:] = 200  # right half nonzero = observed
    path = tmp_path / "m.png"
    Image.fromarray(arr).save(path)
    m = fn.load_mask(path, 8, 12)
    assert m.shape == (8, 12) and m[:, :6].sum() == 0 and m[:, 6:].min() == 1
    assert torch.equal(fn.load_mask(path, 8, 12, invert=True), 1 - m)
    x = torch.full((1, 3, 8, 12), 0.3, dtype=torch.float64)
    y = fn.fill_missing(x, m[None, None], 1.0)
    assert float(y[..., :6].min()) == 1.0 and float(y[..., 6:].max()) == pytest.approx(0.3)


# --- resize, haze, weather ----------------------------------------------------------------------------------


def test_downsample_conventions():
    x = _rand(1, 3, 13, 10)
    assert fn.downsample(x, 3, "area").shape == (1, 3, 4, 3)
    torch.testing.assert_close(fn.downsample(x, 3, "area")[0, 0, 0, 0], x[0, 0, :3, :3].mean())
    flat = torch.full((1, 1, 12, 12), 0.4, dtype=torch.float64)
    torch.testing.assert_close(
        fn.downsample(flat, 4, "bicubic"), torch.full((1, 1, 3, 3), 0.4, dtype=torch.float64)
    )
    with pytest.raises(ValueError):
        fn.downsample(x, 2, "nearest")


def test_haze_model():
    x = _rand(2, 3, 16, 16)
    depth = fn.depth_proxy(16, 16, torch.Generator().manual_seed(0))
    assert float(depth.min()) == 0.0 and float(depth.max()) == pytest.approx(1.0)
    assert float(depth[:4].mean()) > float(depth[-4:].mean())  # far at the top
    d = depth[None, None].expand(2, 1, 16, 16)
    torch.testing.assert_close(fn.add_haze(x, d, torch.zeros(2), torch.ones(2)), x)
    thick = fn.add_haze(x, torch.ones(2, 1, 16, 16), torch.full((2,), 50.0), torch.full((2,), 0.8))
    torch.testing.assert_close(thick, torch.full_like(x, 0.8))


def test_weather_layers():
    g = torch.Generator().manual_seed(0)
    sparse, dense = fn.rain_layer(64, 64, 0.001, 12, 10, g), fn.rain_layer(64, 64, 0.01, 12, 10, g)
    assert 0 <= float(sparse.min()) and float(dense.max()) <= 1
    assert float(dense.mean()) > 3 * float(sparse.mean()) > 0
    snow = fn.snow_layer(64, 64, 0.005, 2.0, g)
    assert 0 <= float(snow.min()) and float(snow.max()) <= 1 and float(snow.mean()) > 0.01
    x = _rand(1, 3, 64, 64)
    y = fn.screen(x, snow[None, None])
    assert float(y.min()) >= 0 and float(y.max()) <= 1 and (y >= x).all()
