"""flowprior: generic image restoration with flow-based priors.

Example:
    >>> import flowprior  # doctest: +SKIP
    >>> restored = flowprior.restore("photo.png", degradation="jpeg+noise", params={"jpeg.quality": 30})  # doctest: +SKIP
"""

__version__ = "0.1.0"


def restore(*args, **kwargs):
    """Restore an image with the embedded prior; see :func:`flowprior.restoration.restore`."""
    from flowprior.restoration import restore as _restore

    return _restore(*args, **kwargs)
