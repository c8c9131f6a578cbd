"""One contract, checked over every registered degradation (and chains of them).

Each case is a spec string; the first test makes sure every registered operator has at least one case, so a new
operator cannot slip past the contract.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from degradations import Degradation, available, parse

CASES = {
    "blur": "blur(sigma=1:2)",
    "blur-disk": "blur(kind=disk,radius=2)",
    "blur-motion": "blur(kind=motion,length=3:7,angle=30)",
    "downsample": "downsample(factor=2)",
    "downsample-area": "downsample(factor=3,mode=area)",
    "haze": "haze",
    "identity": "identity",
    "jpeg": "jpeg(quality=10:70)",
    "jpeg-444": "jpeg(quality=50,subsampling=444)",
    "mask": "mask(coverage=0.1:0.2,size=4)",
    "mask-strokes": "mask(kind=strokes,count=3,width=2,fill=0.5)",
    "mask-file": "mask(kind=file,path={mask_path})",
    "noise": "noise(sigma=5:25)",
    "noise-uniform": "noise(kind=uniform,low=-10,high=5:10)",
    "noise-pg": "noise(kind=poisson_gaussian,peak=10:50)",
    "rain": "rain(density=0.01)",
    "snow": "snow(density=0.01)",
    "chain": "jpeg+noise+mask",
    "chain-sr": "blur+downsample(factor=2)+noise(sigma=3)+noise(sigma=4)",
    "chain-mask-sr": "mask(size=2)+downsample(factor=2,mode=area)",
}
SHAPE = (2, 3, 36, 40)  # not a multiple of the 16-pixel JPEG MCU on purpose


@pytest.fixture(scope="module")
def mask_path(tmp_path_factory) -> str:
    arr = np.full((20, 24), 255, dtype=np.uint8)
    arr[5:12, 6:15] = 0
    path = tmp_path_factory.mktemp("mask") / "mask.png"
    Image.fromarray(arr).save(path)
    return str(path)


@pytest.fixture(params=sorted(CASES), ids=sorted(CASES))
def op(request, mask_path) -> Degradation:
    return parse(CASES[request.param].format(mask_path=mask_path))


def _image(shape=SHAPE, dtype=torch.float32, seed=0) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _params(op: Degradation, shape=SHAPE, seed=123):
    return op.sample_params(shape, torch.Generator().manual_seed(seed))


def test_every_registered_operator_has_a_case():
    covered = {spec.split("(")[0].split("+")[0] for spec in CASES.values()}
    assert set(available()) <= covered, f"no contract case for {set(available()) - covered}"


def test_shape_range_dtype(op):
    x = _image()
    p = _params(op)
    y = op.apply(x, p)
    expected = (SHAPE[0], SHAPE[1], *op.output_size(*SHAPE[-2:]))
    assert tuple(y.shape) == expected
    assert y.dtype == x.dtype
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert tuple(op.forward_model(x, p).shape) == expected
    assert op.apply(x.double(), p).dtype == torch.float64
    for value in p.values():
        assert value.shape[0] == SHAPE[0], "params carry the batch first"


def test_seed_replay(op):
    x = _image()
    p1, p2 = _params(op, seed=7), _params(op, seed=7)
    assert p1.keys() == p2.keys()
    for key in p1:
        assert torch.equal(p1[key], p2[key]), key
    y1, _ = op(x, generator=torch.Generator().manual_seed(7))
    y2, _ = op(x, generator=torch.Generator().manual_seed(7))
    assert torch.equal(y1, y2)


def test_params_replay_is_bit_identical(op):
    x = _image()
    p = _params(op)
    assert torch.equal(op.apply(x, p), op.apply(x, p))
    assert torch.equal(op.forward_model(x, p), op.forward_model(x, p))


def test_no_in_place_mutation(op):
    x = _image()
    p = _params(op)
    x_copy, p_copy = x.clone(), {k: v.clone() for k, v in p.items()}
    op.apply(x, p)
    op.forward_model(x, p)
    op.noise_std(p)
    op.observed_mask(p)
    assert torch.equal(x, x_copy)
    for key in p:
        assert torch.equal(p[key], p_copy[key]), key


def test_forward_model_gradients_are_finite(op):
    x = _image().requires_grad_(True)
    p = _params(op)
    op.forward_model(x, p).square().sum().backward()
    assert torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0


def test_adjointness_of_linear_operators(op):
    if not op.linear:
        pytest.skip("not linear")
    p = _params(op)
    x, z = _image(dtype=torch.float64, seed=1), _image(dtype=torch.float64, seed=2)
    ax = op.forward_model(x, p)
    # Linearity first (autograd's adjoint below is only meaningful for a linear map).
    torch.testing.assert_close(
        op.forward_model(2.0 * x - 3.0 * z, p),
        2.0 * ax - 3.0 * op.forward_model(z, p),
        rtol=1e-12,
        atol=1e-12,
    )
    v = torch.randn(ax.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    _, atv = torch.autograd.functional.vjp(lambda t: op.forward_model(t, p), x, v)
    lhs, rhs = float((ax * v).sum()), float((x * atv).sum())
    assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs))


def test_gradcheck_forward_model_float64(op):
    shape = (1, 3, 16, 16)
    p = _params(op, shape=shape)
    x = _image(shape, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: op.forward_model(t, p), (x,), fast_mode=True)


def test_spec_round_trip(op):
    again = parse(op.spec())
    assert again.spec() == op.spec()
    assert type(again) is type(op)
    p1, p2 = _params(op), _params(again)
    for key in p1:
        assert torch.equal(p1[key], p2[key]), key


def test_noise_std_mask_and_block_size(op):
    p = _params(op)
    h, w = op.output_size(*SHAPE[-2:])
    std = op.noise_std(p)
    if std is not None:
        assert std.shape == (SHAPE[0],) and (std > 0).all() and (std < 1).all()
    mask = op.observed_mask(p)
    if mask is not None:
        assert tuple(mask.shape) == (SHAPE[0], 1, h, w)
        assert set(torch.unique(mask).tolist()) <= {0.0, 1.0}
    assert isinstance(op.block_size(), int) and op.block_size() >= 1


def test_call_without_params_samples_them(op):
    x = _image()
    y, p = op(x, generator=torch.Generator().manual_seed(5))
    assert torch.equal(y, op.apply(x, p))
