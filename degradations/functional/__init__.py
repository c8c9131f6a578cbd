"""Pure tensor functions behind the operators: no state, no registry, explicit generators and seeds."""

from degradations.functional.blur import (
    blur,
    blur_adjoint,
    disk_kernel,
    gaussian_kernel,
    motion_kernel,
    reflect_indices,
    stack_kernels,
)
from degradations.functional.haze import add_haze, depth_proxy, transmission
from degradations.functional.jpeg import (
    dct_matrix,
    jpeg_codec,
    jpeg_encode,
    jpeg_surrogate,
    quantization_tables,
    rgb_to_ycbcr,
    soft_round,
    ycbcr_to_rgb,
)
from degradations.functional.masks import fill_missing, load_mask, random_holes, random_strokes
from degradations.functional.noise import (
    gaussian_noise,
    poisson_gaussian,
    poisson_gaussian_std,
    uniform_noise,
    uniform_std,
)
from degradations.functional.resize import downsample
from degradations.functional.weather import rain_layer, screen, snow_layer

__all__ = [
    "add_haze",
    "blur",
    "blur_adjoint",
    "dct_matrix",
    "depth_proxy",
    "disk_kernel",
    "downsample",
    "fill_missing",
    "gaussian_kernel",
    "gaussian_noise",
    "jpeg_codec",
    "jpeg_encode",
    "jpeg_surrogate",
    "load_mask",
    "motion_kernel",
    "poisson_gaussian",
    "poisson_gaussian_std",
    "quantization_tables",
    "rain_layer",
    "random_holes",
    "random_strokes",
    "reflect_indices",
    "rgb_to_ycbcr",
    "screen",
    "snow_layer",
    "soft_round",
    "stack_kernels",
    "transmission",
    "uniform_noise",
    "uniform_std",
    "ycbcr_to_rgb",
]
