"""The linear operators of ``loss_simlar``: 5-tap Gaussian blur and area zoom.

Both act separably along one axis, so each is a small matrix applied along
that axis; the exact adjoint is the transposed matrix. The matrices are built
once per size on the host in float64 and cast to the data's dtype and device.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .._backend import constant

__all__ = ["blur_matrix", "zoom_matrix", "axis_operators", "axis_bands", "band", "apply_along",
           "apply_adjoint_along"]


@lru_cache(maxsize=64)
def blur_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) matrix of PtyRAD's blur along one axis.

    Kernel ``k(t) = exp(-t^2 / (2 sigma^2))`` at ``t = -2..2``, normalised to
    sum 1, on a signal padded by 2 samples with ``numpy.pad(mode="reflect")``
    (mirror without repeating the edge sample).
    """
    t = np.arange(-2, 3, dtype=np.float64)
    # (t / sigma)**2, not t**2 / sigma**2: sigma**2 underflows to 0 for a tiny
    # sigma, and 0 / 0 at t = 0 would be NaN; this way the kernel tends to the
    # identity.
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k /= k.sum()
    src = np.pad(np.arange(n), 2, mode="reflect")
    m = np.zeros((n, n))
    for i in range(n):
        for j, kj in enumerate(k):
            m[i, src[i + j]] += kj
    m.flags.writeable = False
    return m


@lru_cache(maxsize=64)
def zoom_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix of area averaging (adaptive average pooling).

    Output bin ``i`` averages inputs ``[floor(i n_in / n_out), ceil((i+1) n_in / n_out))``.
    """
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        lo = (i * n_in) // n_out
        hi = -((-(i + 1) * n_in) // n_out)
        m[i, lo:hi] = 1.0 / (hi - lo)
    m.flags.writeable = False
    return m


def axis_operators(shape_zyx, scale_factor, blur_std, owner="loss_simlar"):
    """Host matrices for the (z, y, x) axes, ``None`` where the axis is untouched.

    The blur acts on y and x only; the zoom on all three. Blur comes first.
    The matrices are read-only and cached per (shape, scale, blur): the
    product of zoom and blur is a dense (n/2, n) x (n, n) product, 9 ms at
    n = 256, and a solver asks for the same operators every iteration.
    """
    return _axis_operators(*_key(shape_zyx, scale_factor, blur_std, owner))


def axis_bands(shape_zyx, scale_factor, blur_std, owner="loss_simlar"):
    """:func:`axis_operators` as bands (see :func:`band`) for the fused CPU
    kernel: ``(forward, adjoint)``, each ``((lz, wz), (ly, wy), (lx, wx))``;
    the adjoint bands are those of the transposed matrices, so the adjoint
    passes gather like the forward ones. Read-only and cached like the
    matrices (finding the bands of three 256-wide operators and their
    transposes took 0.7 ms a call)."""
    return _axis_bands(*_key(shape_zyx, scale_factor, blur_std, owner))


def band(m, n):
    """A (n_out, n_in) operator matrix (``None``: identity of size ``n``) as a band:
    ``(lo, w)`` with ``out[i] = sum_t w[i, t] * x[lo[i] + t]``.

    The coefficients are the matrix's own, so the banded passes give the
    dense products' numbers (up to the order of the sums). A row of zeros
    (an input that a zoom leaves out, in a transposed operator) gets zero
    weights, so it does not widen the band.
    """
    if m is None:
        return np.arange(n, dtype=np.int64), np.ones((n, 1))
    nz = m != 0
    lo = np.argmax(nz, axis=1)
    hi = np.where(nz.any(axis=1), m.shape[1] - np.argmax(nz[:, ::-1], axis=1), lo + 1)
    width = int(np.max(hi - lo))
    lo = np.minimum(lo, m.shape[1] - width)
    idx = lo[:, None] + np.arange(width)
    return lo.astype(np.int64), np.take_along_axis(m, idx, axis=1).copy()


def _key(shape_zyx, scale_factor, blur_std, owner):
    """The caches' key, after checking that no axis shrinks to nothing."""
    for n, s in zip(shape_zyx, scale_factor):
        if s != 1 and math.floor(n * s) < 1:
            msg = (
                f"{owner}: scale_factor {s:g} shrinks an axis of size {n} to "
                f"{math.floor(n * s)}; floor(size * scale) must be >= 1"
            )
            raise ValueError(msg)
    return (tuple(int(n) for n in shape_zyx), tuple(float(s) for s in scale_factor),
            float(blur_std) if blur_std else 0.0)


@lru_cache(maxsize=64)
def _axis_operators(shape_zyx, scale_factor, blur_std):
    mats = []
    for axis, (n, s) in enumerate(zip(shape_zyx, scale_factor)):
        m = None
        if blur_std and axis > 0:
            m = blur_matrix(n, blur_std)
        if s != 1:
            z = zoom_matrix(n, math.floor(n * s))
            m = z if m is None else z @ m
        if m is not None:
            m.flags.writeable = False  # cached: shared by every caller
        mats.append(m)
    return tuple(mats)


@lru_cache(maxsize=64)
def _axis_bands(shape_zyx, scale_factor, blur_std):
    mats = _axis_operators(shape_zyx, scale_factor, blur_std)
    forward = tuple(band(m, n) for m, n in zip(mats, shape_zyx))
    adjoint = tuple(band(None if m is None else m.T, n) for m, n in zip(mats, shape_zyx))
    for lo, w in forward + adjoint:
        lo.flags.writeable = w.flags.writeable = False  # cached: shared by every caller
    return forward, adjoint


def apply_along(xp, x, mats):
    """Apply host matrices to the last three axes of ``x``."""
    mz, my, mx = (None if m is None else constant(xp, m, x) for m in mats)
    if mx is not None:
        x = x @ mx.T
    if my is not None:
        x = my @ x
    if mz is not None:
        x = xp.moveaxis(xp.moveaxis(x, -3, -1) @ mz.T, -1, -3)
    return x


def apply_adjoint_along(xp, g, mats):
    """The exact adjoint of :func:`apply_along`."""
    mz, my, mx = (None if m is None else constant(xp, m, g) for m in mats)
    if mz is not None:
        g = xp.moveaxis(xp.moveaxis(g, -3, -1) @ mz, -1, -3)
    if my is not None:
        g = my.T @ g
    if mx is not None:
        g = g @ mx
    return g
