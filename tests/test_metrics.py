"""flowprior.metrics against scikit-image (PSNR, SSIM) and an independent NumPy MS-SSIM."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from flowprior import io, metrics

# Measured agreement in float64: SSIM within 8e-16 of scikit-image, PSNR within 7e-15 dB, MS-SSIM within 3e-16 of
# the NumPy reference below. The tolerances leave room for other BLAS/conv back ends, and are far below the 5e-6
# gap that a float32 Gaussian window alone would cause.
TOL = 1e-10


def _noisy_pair(make_natural_image, size=(96, 80), channels=3, sigmas=(0.02, 0.1), seed=0):
    clean = make_natural_image(*size, channels=channels, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    noisy = [
        (clean + s * torch.randn(clean.shape, generator=g, dtype=torch.float64)).clamp(0, 1) for s in sigmas
    ]
    return clean.expand(len(sigmas), -1, -1, -1), torch.cat(noisy)


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(1, 2, 0).numpy()


def _skimage_ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    kwargs = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, "data_range": 1.0}
    if a.shape[0] == 1:
        return structural_similarity(a[0].numpy(), b[0].numpy(), **kwargs)
    return structural_similarity(_hwc(a), _hwc(b), channel_axis=2, **kwargs)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("border", [0, 4])
def test_psnr_and_ssim_match_skimage(make_natural_image, channels, border):
    clean, noisy = _noisy_pair(make_natural_image, channels=channels)
    p = metrics.psnr(clean, noisy, border=border)
    s = metrics.ssim(clean, noisy, border=border)
    assert p.shape == s.shape == (2,) and p.dtype == torch.float64
    crop = (slice(None), slice(border, -border or None), slice(border, -border or None))
    for i in range(2):
        a, b = clean[i][crop], noisy[i][crop]
        assert abs(p[i].item() - peak_signal_noise_ratio(a.numpy(), b.numpy(), data_range=1.0)) < TOL
        assert abs(s[i].item() - _skimage_ssim(a, b)) < TOL
    assert p[0] > p[1] and s[0] > s[1]  # more noise, lower scores


def test_float32_inputs_are_measured_in_float64(make_natural_image):
    clean, noisy = _noisy_pair(make_natural_image)
    # Only the float32 rounding of the inputs differs.
    torch.testing.assert_close(
        metrics.ssim(clean.float(), noisy.float()), metrics.ssim(clean, noisy), atol=1e-6, rtol=0
    )


def test_psnr_golden_values():
    zeros = torch.zeros(2, 3, 8, 8, dtype=torch.float64)
    test = torch.stack(
        [torch.full((3, 8, 8), 0.1, dtype=torch.float64), torch.zeros(3, 8, 8, dtype=torch.float64)]
    )
    p = metrics.psnr(zeros, test)
    assert p[0].item() == pytest.approx(20.0, abs=1e-9) and math.isinf(p[1].item())


def _ms_ssim_reference(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM of (H, W, C) float64 arrays with even sides at every scale, written independently with NumPy."""
    weights = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]
    taps = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    taps /= taps.sum()

    def blur(z):  # valid-region separable Gaussian filter
        z = np.lib.stride_tricks.sliding_window_view(z, 11, axis=0) @ taps
        return np.lib.stride_tricks.sliding_window_view(z, 11, axis=1) @ taps

    c1, c2 = 0.01**2, 0.03**2
    terms = []
    for level, weight in enumerate(weights):
        mx, my = blur(a), blur(b)
        vx, vy, cov = blur(a * a) - mx**2, blur(b * b) - my**2, blur(a * b) - mx * my
        cs = ((2 * cov + c2) / (vx + vy + c2)).mean(axis=(0, 1))
        if level < len(weights) - 1:
            terms.append(np.maximum(cs, 0) ** weight)
            a = a.reshape(a.shape[0] // 2, 2, a.shape[1] // 2, 2, -1).mean(axis=(1, 3))
            b = b.reshape(b.shape[0] // 2, 2, b.shape[1] // 2, 2, -1).mean(axis=(1, 3))
        else:
            luminance = ((2 * mx * my + c1) / (mx**2 + my**2 + c1)) * (2 * cov + c2) / (vx + vy + c2)
            terms.append(np.maximum(luminance.mean(axis=(0, 1)), 0) ** weight)
    return float(np.prod(terms, axis=0).mean())


def test_ms_ssim_matches_numpy_reference(make_natural_image):
    clean, noisy = _noisy_pair(make_natural_image, size=(176, 192))  # sides divisible by 16: no pooling pads
    ms = metrics.ms_ssim(clean, noisy)
    assert ms.shape == (2,) and ms[0] > ms[1]
    for i in range(2):
        assert abs(ms[i].item() - _ms_ssim_reference(_hwc(clean[i]), _hwc(noisy[i]))) < TOL
    assert metrics.ms_ssim(clean, clean).allclose(torch.ones(2, dtype=torch.float64), atol=1e-12)


def test_ms_ssim_refuses_images_too_small_for_five_scales(make_natural_image):
    x = make_natural_image(170, 170)
    assert metrics.ms_ssim(x, x).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"needs both sides >= 161 pixels, got 160x160"):
        metrics.ms_ssim(x, x, border=5)


def test_input_validation(natural_image):
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.psnr(natural_image, natural_image[..., :-1])
    with pytest.raises(ValueError, match="border 32"):
        metrics.ssim(natural_image, natural_image, border=32)
    with pytest.raises(ValueError, match="at least 11x11"):
        metrics.ssim(natural_image[..., :10, :], natural_image[..., :10, :])


def test_compare_files(tmp_path, make_natural_image):
    clean = make_natural_image(176, 176)
    noisy = (clean + 0.05 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(3))).clamp(0, 1)
    ref, test = io.write_image(tmp_path / "ref.png", clean), io.write_image(tmp_path / "test.png", noisy)
    result = metrics.compare_files(ref, test, border=2)
    q_clean, q_noisy = io.read_image(ref).pixels, io.read_image(test).pixels  # what the files hold (8-bit)
    assert result["psnr"] == pytest.approx(metrics.psnr(q_clean, q_noisy, border=2).item(), abs=1e-12)
    assert result["ms_ssim"] == pytest.approx(metrics.ms_ssim(q_clean, q_noisy, border=2).item(), abs=1e-12)
    assert result["shape"] == [3, 176, 176] and result["ms_ssim_note"] is None

    small = io.write_image(tmp_path / "small.png", clean[..., :64, :64])
    result = metrics.compare_files(small, small)
    assert math.isinf(result["psnr"]) and result["ssim"] == pytest.approx(1.0)
    assert result["ms_ssim"] is None and "161" in result["ms_ssim_note"]
    with pytest.raises(ValueError, match="176x176 RGB but .* 64x64 RGB"):
        metrics.compare_files(ref, small)
