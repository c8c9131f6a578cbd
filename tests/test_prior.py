import math

import pytest
import torch

from flowprior.prior.checkpoint import load_prior, save_checkpoint
from flowprior.prior.glow import Glow, GlowConfig
from flowprior.prior.layers import ActNorm, AffineCoupling, FlowStep, InvConv1x1, squeeze2d, unsqueeze2d
from tests.flow_checks import assert_round_trip, brute_force_logdet, randomize

TINY = {"levels": 2, "steps": 2, "width": 8, "depth": 2, "patch_size": 8}


def tiny_glow(dtype=torch.float64, **overrides) -> Glow:
    prior = Glow(GlowConfig(**{**TINY, **overrides})).to(dtype)
    prior.initialize(torch.rand(8, prior.in_channels, 8, 8, dtype=dtype, generator=torch.Generator().manual_seed(1)))
    return randomize(prior).eval()


LAYERS = {
    "actnorm": lambda: ActNorm(12),
    "invconv": lambda: InvConv1x1(12, torch.Generator().manual_seed(0)),
    "coupling": lambda: AffineCoupling(12, width=8, depth=2),
    "step": lambda: FlowStep(12, width=8, depth=2, scale_floor=0.01),
}


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
@pytest.mark.parametrize("batch", [1, 3])
def test_layer_round_trip(name, dtype, tol, batch):
    layer = randomize(LAYERS[name]().to(dtype), scale=0.1).eval()
    x = torch.randn(batch, 12, 4, 4, dtype=dtype, generator=torch.Generator().manual_seed(2))
    assert_round_trip(layer, x, tol)


@pytest.mark.parametrize("name", LAYERS)
def test_layer_logdet_matches_jacobian(name):
    layer = randomize(LAYERS[name]().double(), scale=0.1).eval()
    x = torch.randn(1, 12, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    _, logdet = layer(x)
    assert logdet.item() == pytest.approx(brute_force_logdet(lambda v: layer(v)[0], x).item(), abs=1e-8)


def test_squeeze_round_trip_and_layout():
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float64).reshape(2, 3, 4, 6)
    assert torch.equal(unsqueeze2d(squeeze2d(x)), x)
    assert squeeze2d(x)[0, :4, 0, 0].tolist() == [x[0, 0, 0, 0], x[0, 0, 0, 1], x[0, 0, 1, 0], x[0, 0, 1, 1]]


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
@pytest.mark.parametrize("batch", [1, 3])
def test_glow_round_trip(dtype, tol, batch):
    prior = tiny_glow(dtype)
    x = torch.rand(batch, 3, 16, 8, dtype=dtype, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        z, logdet = prior.encode(x)
        x_back, logdet_decode = prior.decode(z, return_logdet=True)
    assert (x_back - x).abs().max().item() < tol
    assert (logdet + logdet_decode).abs().max().item() < tol * 1e3


def test_glow_logdet_matches_jacobian_on_3x8x8():
    prior = tiny_glow()
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(5))

    def encode_flat(v):
        return torch.cat([zi.reshape(-1) for zi in prior.encode(v)[0]])

    _, logdet = prior.encode(x)
    jacobian = torch.autograd.functional.jacobian(lambda v: encode_flat(v.reshape(x.shape)), x.reshape(-1))
    assert jacobian.shape == (192, 192)
    assert logdet.item() == pytest.approx(torch.linalg.slogdet(jacobian)[1].item(), abs=1e-8)


def test_log_prob_is_latent_density_plus_logdet():
    prior = tiny_glow()
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    z, logdet = prior.encode(x)
    gaussian = sum((-0.5 * (zi**2 + math.log(2 * math.pi))).flatten(1).sum(1) for zi in z)
    assert torch.allclose(prior.log_prob(x), gaussian + logdet, atol=1e-10)


def test_decode_with_coarsest_only_uses_split_means():
    prior = tiny_glow()
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        z, _ = prior.encode(x)
        from_top = prior.decode_from_coarsest(z[-1])
        explicit = prior.decode([torch.zeros_like(zi) for zi in z[:-1]] + [z[-1]])
        full = prior.decode(z)
    assert torch.allclose(from_top, explicit, atol=1e-12)
    assert (from_top - full).abs().max() > 1e-4  # the finer latents carried information that the means replace


def test_sampling_is_reproducible_with_a_generator():
    prior = tiny_glow()
    a = prior.sample(2, 8, 8, generator=torch.Generator().manual_seed(7))
    b = prior.sample(2, 8, 8, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and torch.isfinite(a).all()


def test_bad_sizes_are_rejected():
    prior = tiny_glow()
    with pytest.raises(ValueError, match="divisible by 4"):
        prior.encode(torch.rand(1, 3, 6, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="patch_size"):
        GlowConfig(levels=3, patch_size=20)


def test_checkpoint_round_trip_is_bit_exact_and_never_reinitializes(tmp_path):
    prior = tiny_glow(torch.float32)
    sha = save_checkpoint(tmp_path / "p.pt", prior.config_dict(), prior.state_dict(), {"note": "test"})
    loaded = load_prior(tmp_path / "p.pt", expected_sha256=sha)
    for (name, a), (_, b) in zip(prior.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    before = {k: v.clone() for k, v in loaded.state_dict().items()}
    loaded.train()  # even in training mode, a loaded ActNorm must not re-run its data-dependent init
    degraded = (torch.rand(4, 3, 8, 8) + 0.3 * torch.randn(4, 3, 8, 8)).clamp(0, 1)
    loaded.encode(degraded)
    assert all(torch.equal(before[k], v) for k, v in loaded.state_dict().items())
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(prior.encode(x)[1], loaded.eval().encode(x)[1])


def test_checkpoint_with_wrong_sha_is_refused(tmp_path):
    prior = tiny_glow(torch.float32)
    save_checkpoint(tmp_path / "p.pt", prior.config_dict(), prior.state_dict())
    with pytest.raises(ValueError, match="sha256"):
        load_prior(tmp_path / "p.pt", expected_sha256="0" * 64)
