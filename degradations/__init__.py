"""Image degradation operators: a standalone library (never imports ``flowprior``).

Each operator has the *truth* ``apply`` (used to synthesize data) and the differentiable ``forward_model`` the
solver uses; see :mod:`degradations.base`. Build them by name::

    from degradations import parse
    op = parse("jpeg(quality=10:70)+noise(sigma=5)+mask")
    y, params = op(x, generator=torch.Generator().manual_seed(0))
"""

from degradations.base import Chain, Degradation, Params

# Importing the operator modules registers them.
from degradations.blur import Blur
from degradations.downsample import Downsample
from degradations.haze import Haze
from degradations.identity import Identity
from degradations.jpeg import JPEG
from degradations.mask import Mask
from degradations.noise import Noise
from degradations.rain import Rain
from degradations.registry import available, get, parse, register
from degradations.snow import Snow

__all__ = [
    "JPEG",
    "Blur",
    "Chain",
    "Degradation",
    "Downsample",
    "Haze",
    "Identity",
    "Mask",
    "Noise",
    "Params",
    "Rain",
    "Snow",
    "available",
    "get",
    "parse",
    "register",
]
