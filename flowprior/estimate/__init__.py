"""Estimating an unknown degradation from the image alone (issue 15): noise level, JPEG history, defects.

* :mod:`flowprior.estimate.noise` — Gaussian σ per channel (also *before* a JPEG compression).
* :mod:`flowprior.estimate.jpeg` — quantization tables / subsampling / IJG quality from a JPEG file; grid and
  quality from decoded pixels.
* :mod:`flowprior.estimate.defects` — mask of constant-filled holes and thin scratches.
* :mod:`flowprior.estimate.report` — :func:`estimate_degradation` → :class:`DegradationEstimate` (``spec``,
  ``params``, ``mask``, ``confidence``, ``report``): everything composed into an operator, with a confidence
  per estimate (``flowprior inspect``, ``--degradation auto``).
"""

from flowprior.estimate.report import DegradationEstimate, estimate_degradation

__all__ = ["DegradationEstimate", "estimate_degradation"]
