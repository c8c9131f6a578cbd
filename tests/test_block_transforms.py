"""The collaborative filter's transforms: the group's Haar basis and the blocks' bior1.5 wavelet."""

from __future__ import annotations

import pytest
import torch

from flowprior.warmstart import block_transforms
from flowprior.warmstart.block_transforms import bior15_block, bior15_line, dct_block


@pytest.mark.parametrize("size", [1, 2, 4, 16])
def test_the_group_transform_is_orthonormal_and_starts_with_the_mean(size):
    basis = block_transforms.group_basis(size)
    assert torch.allclose(basis @ basis.T, torch.eye(size), atol=1e-6)
    assert torch.allclose(basis[0], torch.full((size,), size ** -0.5))


def test_the_wavelet_rows_are_the_periodized_bior15_basis():
    """Rows pinned to PyWavelets' ``wavedec(e_i, 'bior1.5', mode='periodization', level=3)`` of the unit vectors,
    each row scaled to unit norm (printed once, PyWavelets is not a dependency): a wrong tap, phase or level order
    moves them."""
    line = bior15_line()
    expected = {
        0: [0.3536] * 8,
        1: [0.2194, 0.4493, 0.4493, 0.2194, -0.2194, -0.4493, -0.4493, -0.2194],
        2: [0.5694, 0.4023, -0.4023, -0.5694, -0.0835, 0.0835, -0.0835, 0.0835],
        3: [-0.0835, 0.0835, -0.0835, 0.0835, 0.5694, 0.4023, -0.4023, -0.5694],
        4: [0.7071, -0.7071, 0, 0, 0, 0, 0, 0],
        7: [0, 0, 0, 0, 0, 0, 0.7071, -0.7071],
    }
    for row, values in expected.items():
        assert torch.allclose(line[row], torch.tensor(values, dtype=torch.float64), atol=1e-4), row
    assert torch.allclose(line.norm(dim=1), torch.ones(8, dtype=torch.float64))


def test_the_block_wavelet_inverts_and_keeps_white_noise_at_its_level():
    forward, inverse = bior15_block()
    assert torch.allclose(inverse @ forward, torch.eye(64), atol=1e-5)
    noise = torch.randn(64, 20000, generator=torch.Generator().manual_seed(0))
    stds = (forward @ noise).std(dim=1)  # unit-norm rows: every coefficient's noise std is the pixels'
    assert torch.allclose(stds, torch.ones(64), atol=0.03)


def test_an_edge_costs_fewer_wavelet_coefficients_than_dct_ones():
    """Why the hard-thresholding step uses the wavelet (module docstring): a step edge inside a block."""
    block = torch.zeros(8, 8)
    block[:, 3:] = 1.0
    wavelet = bior15_block()[0] @ block.flatten()
    dct = dct_block() @ block.flatten()
    assert (wavelet.abs() > 0.05).sum() < (dct.abs() > 0.05).sum()
