"""Separable 2-D filtering over the last two axes, 'valid' and its adjoint.

A 1-D 'valid' correlation with an n-tap window maps a length-L axis to
``L - n + 1``: ``out[i] = sum_k w[k] x[i + k]``. Its adjoint (transpose)
maps back to length L: ``out[j] = sum_k w[k] g[j - k]`` over the ``g``
indices that exist, i.e. a 'full' correlation with the reversed window. A
separable 2-D window is one such pass per axis: n multiply-adds per
element and pass instead of n^2, and only (n + 1) / 2 multiplications
because the window is symmetric (taps k and n-1-k share one).

The kernels are sums of n shifted slices times the weights, which every
array API namespace runs (and traces). On NumPy, with the planes in the
cache (:mod:`._numpy_blocks`), the whole SSIM value and gradient ran
faster with them than with SciPy's compiled ``correlate1d`` (numbers in
docs/benchmarks.md).
"""

from __future__ import annotations

import math

from .._backend import device_of, whole_planes

__all__ = ["filter_valid", "filter_valid_adjoint", "gaussian_window"]


def gaussian_window(sigma: float, truncate: float = 3.5) -> tuple:
    """Normalised samples of ``exp(-t^2 / (2 sigma^2))`` at the integers
    ``|t| <= int(truncate * sigma + 0.5)``, as Python floats (float64);
    symmetric, with an odd number of taps.

    The radius rule and ``truncate = 3.5`` are scikit-image's for SSIM with
    ``gaussian_weights=True`` (which calls ``scipy.ndimage.gaussian_filter``):
    11 taps for ``sigma = 1.5``.
    """
    r = int(truncate * sigma + 0.5)
    raw = [math.exp(-0.5 * (t / sigma) ** 2) for t in range(-r, r + 1)]
    total = math.fsum(raw)
    return tuple(v / total for v in raw)


def _slice(x, axis, start, length):
    return x[..., start:start + length] if axis == -1 else x[..., start:start + length, :]


def _correlate_valid_1d(xp, x, w, axis):
    # The window is symmetric: w[k] and w[n-1-k] share one multiplication.
    n = len(w)
    r, m = n // 2, x.shape[axis] - n + 1
    out = w[r] * _slice(x, axis, r, m)
    for k in range(r):
        out = out + w[k] * (_slice(x, axis, k, m) + _slice(x, axis, n - 1 - k, m))
    return out


def _zero_pad_1d(xp, g, r, axis):
    shape = list(g.shape)
    shape[axis] = r
    zeros = xp.zeros(tuple(shape), dtype=g.dtype, device=device_of(g))
    # Dask would keep the padding as chunks of its own, and every shifted
    # slice would then cut the plane into more pieces.
    return whole_planes(xp.concat((zeros, g, zeros), axis=axis))


def filter_valid(xp, x, w):
    """'Valid' correlation of the last two axes of ``x`` with the separable
    window ``w`` (a symmetric tuple of an odd number n of floats, the same
    along both axes): shape ``(..., H - n + 1, W - n + 1)``."""
    return _correlate_valid_1d(xp, _correlate_valid_1d(xp, x, w, -1), w, -2)


def filter_valid_adjoint(xp, g, w):
    """The adjoint of :func:`filter_valid`: ``g`` of shape
    ``(..., H - n + 1, W - n + 1)`` to ``(..., H, W)``."""
    r = len(w) - 1
    # The full correlation with the reversed window, which is the window.
    out = _correlate_valid_1d(xp, _zero_pad_1d(xp, g, r, -1), w, -1)
    return _correlate_valid_1d(xp, _zero_pad_1d(xp, out, r, -2), w, -2)
