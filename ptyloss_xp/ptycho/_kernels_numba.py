"""numba kernels of the PtyRAD terms and TV for NumPy float32/float64 arrays.

The generic kernels in :mod:`ptyloss_xp.ptycho.terms` are written once for
every array API namespace, so on NumPy every intermediate (``I^p``, the
residual, the slope, ...) is one more full-size array and one more pass over
main memory. Here each term is a loop that does all its elementwise work in
registers:

- pass 1 reads the inputs once and returns the sums that the value and the
  gradient's scale need, together with a count of the input elements outside
  their declared domain (non-finite, or below the ``Arg``'s bound), so that
  the value checks cost no extra read of the data;
- pass 2 (data terms) reads the inputs again and writes the gradient, scaled,
  into the output (the caller's ``out=`` array, or a new one), optionally
  adding to what it holds (the combiner's sum over terms), and counts the
  non-finite elements it wrote: the result check reads nothing again.

Recomputing the factors in pass 2 moves as many bytes as writing an
unscaled direction in pass 1 and scaling it in place, and it lets the small
scale enter each element first: the unscaled ``I^(p-1)`` at ``I`` near the
smallest float32 overflows although the gradient does not (powers other
than 1 and 1/2, whose powers are the cost, write the direction and fall back
to this where it overflows). Elementwise work is done in the data's dtype,
as in the generic path; loss_simlar (banded blur and zoom fused with the std
over modes) works in float64. On float32, ``log`` and ``x**p`` are
:mod:`._float32_math`'s vector forms (``log`` within 1 ulp of the correctly
rounded result, ``x**p`` within 1 ulp for ``p <= 1``), not libm's scalar
calls.

What keeps a loop vector code on AVX2 (each measured, 2-6x when lost):

- sums are taken over blocks of 256 elements of a row (pattern or slice) in
  the data's dtype, then in float64 per row, and the row sums are added in
  order after the parallel loop, so the result does not depend on the
  number of threads; ``fastmath={"reassoc"}`` only lets LLVM split a
  block's sum into vector lanes, no other IEEE rule is relaxed (NaN and inf
  propagate, so the domain counts see them);
- counts (domain, non-finite) are int32 per row: numba's int64 halves the
  lanes, and a float count without reassoc is a sequential float sum;
- inner loops index views that start at 0: an index that starts at a
  run-time offset may be negative for numba, and its wraparound select
  keeps the loop scalar;
- NumPy's error model: a division is one instruction, not a test for 0.

The generic path stays the reference: tests compare both on every parameter
case. :func:`ptyloss_xp.ptycho._fast.kernels` decides when these run.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from .. import _backend
from .._numba import one_at_a_time
from ._float32_math import log, pow  # noqa: A004

__all__ = ["pointwise_sums", "pointwise_grad", "pacbed_sums", "power", "sparse_sums",
           "sparse_grad", "tv_value_grad"]

_REASSOC = {"reassoc"}
# Row sums are taken over blocks of this many elements in the data's dtype,
# then added in float64: a float64 sum of float32 terms keeps LLVM from
# vectorising the loop (4x slower with a log or a power in it, measured).
_BLOCK = 256
# Columns per task of loss_pacbed's pass 1 (its band of the four per-column
# sums and counts, 192 KiB, stays in a core's L2).
_BAND = 8192


def _kernel(**options):
    """``njit`` for this module: cached, NumPy's error model (x/0 gives IEEE's
    inf or NaN, which the value checks see)."""
    return njit(cache=True, error_model="numpy", **options)


_SINGLE, _POISSN = 0, 1


# Domain counts: ``count`` plus 1 where ``x`` is NaN, infinite or below its
# bound, without a branch so that the count stays in a vector lane (``x - x``
# is NaN for inf and NaN). Two functions, not a flag, so no select survives
# in the loop.
@_kernel(inline="always")
def _count_outside_open(count, x, lo):
    return np.int32(count + np.int32(not ((x > lo) & (x - x == 0))))


@_kernel(inline="always")
def _count_outside_closed(count, x, lo):
    return np.int32(count + np.int32(not ((x >= lo) & (x - x == 0))))


# Non-finite counts of the gradients written: ``count`` plus 1 where ``v``
# is NaN or infinite. int32, not numba's int64 (half the lanes) or float32
# (a float sum without reassoc keeps the loop scalar): 3x faster, measured.
# A row holds fewer than 2^31 elements, so the count cannot wrap to 0.
@_kernel(inline="always")
def _count_nonfinite(count, v):
    return np.int32(count + np.int32(v - v != 0))


# The weight, or None for none: numba compiles the unweighted loops without
# the multiply and the weight's row. That frees the registers the float32
# powers need for their constants, which were otherwise reloaded in every
# iteration: a loop that sums D^p took 1.7 ns per element against 2.7 with
# a row of ones, and loss_pacbed's pass 1 22% less time (measured).
def _weighted(w, k, v):
    """``w[k] * v``, or ``v`` where ``w`` is None."""


@overload(_weighted, jit_options={"forceinline": True})
def _weighted_impl(w, k, v):
    if isinstance(w, types.NoneType):
        return lambda w, k, v: v
    return lambda w, k, v: w[k] * v


def _band(w, a, b):
    """``w[a:b]``, or None where ``w`` is None."""


@overload(_band, jit_options={"forceinline": True})
def _band_impl(w, a, b):
    if isinstance(w, types.NoneType):
        return lambda w, a, b: None
    return lambda w, a, b: w[a:b]


# Pass 1, like pass 2 below, is one loop per (term, power) in the prange body
# (see there why). ``w1`` is the weight, or None. For a general power
# (mode 3) the loop also writes the unscaled gradient ``W q I^p / I`` into
# ``g2`` (``direction`` True; pruned when None, as ``acc`` in pass 2) and
# counts its non-finite elements: the powers, 6 ns each in libm and 2 in
# ``_float32_math``, are then taken once per element, not twice. Without
# ``g2`` it writes a row buffer instead: one loop body either way, so the
# float64 sums come out bit-equal in ``value`` and ``value_and_grad``.
@_kernel(parallel=True, fastmath=_REASSOC)
def _pointwise_sums(kind, mode, m2, d2, w1, p, eps, lo_i, lo_d, zero, g2, direction):
    n, m = m2.shape
    rows = np.empty((5, n))
    for i in prange(n):
        x, d = m2[i], d2[i]
        g = g2[i] if direction is not None else np.empty(m if mode == 3 else 0, m2.dtype)
        t = 0.0
        s = 0.0
        bi = np.int32(0)
        bd = np.int32(0)
        bg = np.int32(0)
        for k0 in range(0, m, _BLOCK):
            k1 = min(k0 + _BLOCK, m)
            # Views from 0 (see _pacbed_sums).
            xb, db, gb = x[k0:k1], d[k0:k1], g[k0:k1]
            wb = _band(w1, k0, k1)
            tb = zero
            sb = zero
            if kind == _SINGLE and mode == 1:
                for k in range(k1 - k0):
                    bi = _count_outside_open(bi, xb[k], lo_i)
                    bd = _count_outside_closed(bd, db[k], lo_d)
                    r = xb[k] - db[k]
                    tb += _weighted(wb, k, r) * r
                    sb += _weighted(wb, k, db[k])
            elif kind == _SINGLE and mode == 2:
                for k in range(k1 - k0):
                    bi = _count_outside_open(bi, xb[k], lo_i)
                    bd = _count_outside_closed(bd, db[k], lo_d)
                    dp = np.sqrt(db[k])
                    r = np.sqrt(xb[k]) - dp
                    tb += _weighted(wb, k, r) * r
                    sb += _weighted(wb, k, dp)
            elif kind == _SINGLE:
                for k in range(k1 - k0):
                    bi = _count_outside_open(bi, xb[k], lo_i)
                    bd = _count_outside_closed(bd, db[k], lo_d)
                    dp = pow(db[k], p)
                    ip = pow(xb[k], p)
                    r = ip - dp
                    tb += _weighted(wb, k, r) * r
                    sb += _weighted(wb, k, dp)
                    gb[k] = _weighted(wb, k, r) * ip / xb[k]
                    bg = _count_nonfinite(bg, gb[k])
            elif mode == 1:
                for k in range(k1 - k0):
                    bi = _count_outside_open(bi, xb[k], lo_i)
                    bd = _count_outside_closed(bd, db[k], lo_d)
                    tb += _weighted(wb, k, db[k] * log(xb[k] + eps) - xb[k])
                    sb += _weighted(wb, k, db[k])
            elif mode == 2:
                for k in range(k1 - k0):
                    bi = _count_outside_open(bi, xb[k], lo_i)
                    bd = _count_outside_closed(bd, db[k], lo_d)
                    ip = np.sqrt(xb[k])
                    dp = np.sqrt(db[k])
                    tb += _weighted(wb, k, dp * log(ip + eps) - ip)
                    sb += _weighted(wb, k, dp)
            else:
                for k in range(k1 - k0):
                    bi = _count_outside_open(bi, xb[k], lo_i)
                    bd = _count_outside_closed(bd, db[k], lo_d)
                    ip = pow(xb[k], p)
                    dp = pow(db[k], p)
                    tb += _weighted(wb, k, dp * log(ip + eps) - ip)
                    sb += _weighted(wb, k, dp)
                    gb[k] = _weighted(wb, k, dp / (ip + eps) - 1) * ip / xb[k]
                    bg = _count_nonfinite(bg, gb[k])
            t += np.float64(tb)
            s += np.float64(sb)
        rows[0, i] = t
        rows[1, i] = s
        rows[2, i] = bi
        rows[3, i] = bd
        rows[4, i] = bg
    out = np.zeros(5)
    for i in range(n):
        for j in range(5):
            out[j] += rows[j, i]
    return out


@_kernel(parallel=True)
def _scale_in_place(g2, scale):
    """``g2 *= scale``; returns the number of non-finite results."""
    n = g2.shape[0]
    bads = np.zeros(n, dtype=np.int64)
    for i in prange(n):
        g = g2[i]
        bad = np.int32(0)
        for k in range(g.shape[0]):
            g[k] = scale * g[k]
            bad = _count_nonfinite(bad, g[k])
        bads[i] = bad
    return bads.sum()


# Pass 2 is written as one loop per (term, power) inside the parallel loop:
# numba vectorises a loop over a row only when its body has no branch that
# depends on run-time flags and the loop sits in the ``prange`` body itself
# (a called row function, even inlined, stays scalar: 20-60x slower,
# measured). ``acc`` is ``None`` or ``True``: numba prunes ``acc is None``
# when it compiles, so "write" and "add" are two specialisations. In every
# loop the small scale ``c`` enters first and ``I^(p-1)`` is never formed
# alone (it overflows near the smallest float32 where the gradient does
# not), and for loss_poissn ``c D^p / (I^p + eps) - c`` keeps the ratio from
# overflowing when eps = 0.
@_kernel(parallel=True)
def _pointwise_grad(kind, mode, m2, d2, w1, p, eps, scale, g2, acc):
    n = m2.shape[0]
    bads = np.zeros(n, dtype=np.int64)
    for i in prange(n):
        x, d, g = m2[i], d2[i], g2[i]
        bad = np.int32(0)
        if kind == _SINGLE and mode == 1:
            for k in range(x.shape[0]):
                v = w1[k] * scale * (x[k] - d[k])
                g[k] = v if acc is None else g[k] + v
                bad = _count_nonfinite(bad, g[k])
        elif kind == _SINGLE and mode == 2:
            for k in range(x.shape[0]):
                ip = np.sqrt(x[k])
                v = w1[k] * scale * (ip - np.sqrt(d[k])) / ip
                g[k] = v if acc is None else g[k] + v
                bad = _count_nonfinite(bad, g[k])
        elif kind == _SINGLE:
            for k in range(x.shape[0]):
                ip = pow(x[k], p)
                v = w1[k] * scale * (ip - pow(d[k], p)) * ip / x[k]
                g[k] = v if acc is None else g[k] + v
                bad = _count_nonfinite(bad, g[k])
        elif mode == 1:
            for k in range(x.shape[0]):
                c = w1[k] * scale
                v = c * d[k] / (x[k] + eps) - c
                g[k] = v if acc is None else g[k] + v
                bad = _count_nonfinite(bad, g[k])
        elif mode == 2:
            for k in range(x.shape[0]):
                c = w1[k] * scale
                ip = np.sqrt(x[k])
                v = (c * np.sqrt(d[k]) / (ip + eps) - c) / ip
                g[k] = v if acc is None else g[k] + v
                bad = _count_nonfinite(bad, g[k])
        else:
            for k in range(x.shape[0]):
                c = w1[k] * scale
                ip = pow(x[k], p)
                v = (c * pow(d[k], p) / (ip + eps) - c) * ip / x[k]
                g[k] = v if acc is None else g[k] + v
                bad = _count_nonfinite(bad, g[k])
        bads[i] = bad
    return bads.sum()


def _flat(x):
    """``x`` as a C-contiguous (N, prod(rest)) array; a view when it already is one."""
    return np.ascontiguousarray(x).reshape(x.shape[0], -1)


def _mode(p):
    """The power's loop: 1 (none), 2 (sqrt) or 3 (``x**p``)."""
    return 1 if p == 1 else 2 if p == 0.5 else 3


def _weight_or_none(w, model):
    return None if w is None else np.ascontiguousarray(w, dtype=model.dtype).reshape(-1)


@one_at_a_time
def pointwise_sums(kind, model, meas, w, p, eps, lo_i, lo_d, out=None):
    """Pass 1 of ``loss_single`` (``kind="single"``) or ``loss_poissn`` (``"poissn"``).

    Returns ``(sum_term, sum_d, bad_i, bad_d, direction)``: as float64 host
    scalars ``sum(W (I^p - D^p)^2)`` (single) or ``sum(W (D^p log(I^p + eps)
    - I^p))`` (poissn); ``sum(W D^p)``; the numbers of elements of ``model``
    not in ``(lo_i, inf)`` and of ``meas`` not in ``[lo_d, inf)``. ``out`` (a C-contiguous
    array like ``model``, or None) may receive the unscaled gradient
    ``W q I^p / I``; ``direction`` says whether it did and every element is
    finite, so that :func:`pointwise_grad` only scales it. That is done for
    powers other than 1 and 1/2 (their powers are the cost); elsewhere, and
    where the unscaled form overflows (``I`` near the smallest float32),
    pass 2 computes each element with the small scale first.
    """
    code = _SINGLE if kind == "single" else _POISSN
    c = model.dtype.type
    mode = _mode(p)
    direction = out is not None and mode == 3
    g2 = out.reshape(out.shape[0], -1) if direction else np.empty((0, 0), dtype=model.dtype)
    s = _pointwise_sums(code, mode, _flat(model), _flat(meas), _weight_or_none(w, model),
                        c(p), c(eps), c(lo_i), c(lo_d), c(0), g2, True if direction else None)
    return s[0], s[1], s[2], s[3], direction and s[4] == 0


@one_at_a_time
def pointwise_grad(kind, model, meas, w, p, eps, scale, out, accumulate, direction=False):
    """Pass 2: ``out = [out +] scale * q * I^(p-1)``, ``q`` the term's factor.

    ``q = W (I^p - D^p)`` (single) or ``W (D^p / (I^p + eps) - 1)`` (poissn);
    ``out`` is a C-contiguous array shaped and typed like ``model``. Every
    element is computed in the data's dtype, like the generic path. With
    ``direction`` (from :func:`pointwise_sums`) ``out`` holds the unscaled
    gradient and is scaled in place. Returns ``(out, number of non-finite
    elements written)``.
    """
    g2 = out.reshape(out.shape[0], -1)
    c = model.dtype.type
    if direction:
        return out, _scale_in_place(g2, c(scale))
    code = _SINGLE if kind == "single" else _POISSN
    # A row of ones without a weight: pass 2 ran no faster without it
    # (0.96-1.02x, measured), and a weight-free variant would double its
    # compiled versions (the test suite's first calls compile them all).
    w1 = _weight_or_none(w, model)
    w1 = np.ones(model[0].size, dtype=model.dtype) if w1 is None else w1
    bad = _pointwise_grad(code, _mode(p), _flat(model), _flat(meas), w1, c(p), c(eps), c(scale),
                          g2, True if accumulate else None)
    return out, bad


# Columns in parallel: the sums over patterns are sums over rows, so each
# thread owns a band of columns and walks the rows in order, reading I and D
# once from memory (a band of a row stays in cache for its loops).
# Per-column sums have no carried dependence inside a row, so the loops
# vectorise. One loop per power, as in the pointwise terms.
@_kernel(parallel=True, fastmath=_REASSOC)
def _pacbed_sums(mode, m2, d2, w1, p, lo_i, lo_d, zero):
    n, k_len = m2.shape
    sum_i = np.zeros(k_len)
    sum_dn = np.zeros(k_len)
    bad_i = np.zeros(k_len, dtype=np.int32)
    bad_d = np.zeros(k_len, dtype=np.int32)
    n_bands = max(1, min(k_len // _BAND, 64))
    sum_dp = np.zeros(n_bands)
    for b in prange(n_bands):
        lo = b * k_len // n_bands
        hi = (b + 1) * k_len // n_bands
        # Views from 0: an index that starts at a run-time ``lo`` may be
        # negative for numba, and its wraparound select stops vectorising.
        si, sn = sum_i[lo:hi], sum_dn[lo:hi]
        ci, cd, w = bad_i[lo:hi], bad_d[lo:hi], _band(w1, lo, hi)
        t = 0.0
        for i in range(n):
            x, d = m2[i, lo:hi], d2[i, lo:hi]
            for k in range(hi - lo):
                si[k] += np.float64(x[k])
                ci[k] = _count_outside_open(ci[k], x[k], lo_i)
            for k in range(hi - lo):
                sn[k] += np.float64(d[k])
                cd[k] = _count_outside_closed(cd[k], d[k], lo_d)
            # sum(W D^p) needs no columns: blocks in the data's dtype, then
            # float64, as in _pointwise_sums.
            for k0 in range(0, hi - lo, _BLOCK):
                k1 = min(k0 + _BLOCK, hi - lo)
                db, wb = d[k0:k1], _band(w, k0, k1)
                tb = zero
                if mode == 1:
                    for k in range(k1 - k0):
                        tb += _weighted(wb, k, db[k])
                elif mode == 2:
                    for k in range(k1 - k0):
                        tb += _weighted(wb, k, np.sqrt(db[k]))
                else:
                    for k in range(k1 - k0):
                        tb += _weighted(wb, k, pow(db[k], p))
                t += np.float64(tb)
        sum_dp[b] = t
    total_dp = 0.0
    for b in range(n_bands):
        total_dp += sum_dp[b]
    return sum_i, sum_dn, total_dp, bad_i.sum(), bad_d.sum()


@one_at_a_time
def pacbed_sums(model, meas, w, p, lo_i, lo_d):
    """Pass 1 of ``loss_pacbed``.

    Returns ``(sum_i, sum_dn, sum_d, bad_i, bad_d)``: the float64 (Ky, Kx)
    sums over patterns of ``I`` and ``D``, ``sum(W D^p)``, and the domain
    counts as in :func:`pointwise_sums`.
    """
    c = model.dtype.type
    sum_i, sum_dn, sum_d, bad_i, bad_d = _pacbed_sums(
        _mode(p), _flat(model), _flat(meas), _weight_or_none(w, model), c(p), c(lo_i), c(lo_d),
        c(0))
    shape = model.shape[1:]
    return sum_i.reshape(shape), sum_dn.reshape(shape), sum_d, bad_i, bad_d


@_kernel(parallel=True)
def _broadcast_into(g1, out2, accumulate):
    for i in prange(out2.shape[0]):
        row = out2[i]
        for k in range(row.shape[0]):
            row[k] = row[k] + g1[k] if accumulate else g1[k]


@one_at_a_time
def broadcast_into(g, out, accumulate):
    """``out[n] = [out[n] +] g`` for every pattern ``n``; ``g`` is (Ky, Kx)."""
    _broadcast_into(np.ascontiguousarray(g, dtype=out.dtype).reshape(-1),
                    out.reshape(out.shape[0], -1), accumulate)
    return out


@_kernel(parallel=True)
def _powers(x, p, out):
    for k in prange(x.shape[0]):
        out[k] = pow(x[k], p)


@one_at_a_time
def power(xp, x, p):
    """``x ** p`` as :func:`ptyloss_xp._backend.power`, with float32's general
    powers in vector code: NumPy's take libm's scalar ``powf``, 10 ns per
    element, 1.4 ms of loss_pacbed's finish on two 256x256 PACBEDs."""
    if p in (1, 0.5, 2) or x.dtype != np.float32:
        return _backend.power(xp, x, p)
    out = np.empty(x.shape, dtype=x.dtype)
    _powers(np.ascontiguousarray(x).reshape(-1), x.dtype.type(p), out.reshape(-1))
    return out


# Row loops in the prange body, one per case (see pass 2 of the pointwise terms).
@_kernel(parallel=True, fastmath=_REASSOC)
def _sparse_sums(x3, order):
    n, n_modes, _ = x3.shape
    rows = np.empty((n, n_modes))
    bads = np.empty((n, n_modes))
    for i in prange(n):
        for o in range(n_modes):
            x = x3[i, o]
            t = 0.0
            bad = np.float32(0.0)
            if order == 1:
                for k in range(x.shape[0]):
                    bad += np.float32(1.0) - np.float32(x[k] - x[k] == 0)
                    t += np.float64(abs(x[k]))
            else:
                for k in range(x.shape[0]):
                    bad += np.float32(1.0) - np.float32(x[k] - x[k] == 0)
                    t += np.float64(abs(x[k]) ** order)
            rows[i, o] = t
            bads[i, o] = bad
    sums = np.zeros(n_modes)
    for i in range(n):
        for o in range(n_modes):
            sums[o] += rows[i, o]
    return sums, bads.sum()


@one_at_a_time
def sparse_sums(x, order):
    """``(sum_{n,z,y,x} |x|^order per mode (float64, (O,)), non-finite count)``."""
    return _sparse_sums(np.ascontiguousarray(x).reshape(x.shape[0], x.shape[1], -1), int(order))


@_kernel(parallel=True)
def _sparse_grad(x3, order, coef, g3, accumulate):
    n, n_modes, k_len = x3.shape
    for i in prange(n):
        for o in range(n_modes):
            x, g, c = x3[i, o], g3[i, o], coef[o]
            if order == 1:
                for k in range(k_len):
                    s = c * np.sign(x[k])
                    g[k] = g[k] + s if accumulate else s
            else:
                for k in range(k_len):
                    s = c * np.sign(x[k]) * abs(x[k]) ** (order - 1)
                    g[k] = g[k] + s if accumulate else s


@one_at_a_time
def sparse_grad(x, order, coef, out, accumulate):
    """``out = [out +] coef_o sign(x) |x|^(order-1)``; ``coef`` (O,), rounded to the data's dtype."""
    _sparse_grad(np.ascontiguousarray(x).reshape(x.shape[0], x.shape[1], -1), int(order),
                 np.asarray(coef, dtype=x.dtype), out.reshape(out.shape[0], out.shape[1], -1),
                 accumulate)
    return out


@_kernel(inline="always")
def _tv_element(dy, dx, eps, eps2, c):
    """``(mag - eps, c dy / mag, c dx / mag)``, in the data's dtype; the quotients
    are 0 where ``mag`` is 0 (``eps^2`` underflowed on a flat patch: the
    gradient there is 0). ``mag`` is then that 0, of the right type."""
    mag = np.sqrt(dy * dy + dx * dx + eps2)
    inv = c / mag if mag > 0 else mag
    return mag - eps, dy * inv, dx * inv


@_kernel(fastmath=_REASSOC)
def _tv_slice(x, eps, eps2, c, g, accumulate, write, qy_prev, qy, qx):
    """One (Ny, Nx) slice: returns ``(sum(mag - eps), non-finite count)``; writes ``c * grad``
    into ``g`` where ``write``.

    Row ``i`` of the gradient is ``qy[i-1] - qy[i] + qx[:, j-1] - qx[:, j]``
    with ``q = c * d / mag`` (0 past the edges). Each row is two loops with
    no carried dependence, so both vectorise: the quotients of the row, then
    its gradient from them and the previous row's ``qy``. The elementwise
    work is in the data's dtype, as in the generic path (float32: eight
    lanes, not four); the value is summed in float64.
    """
    ny, nx = x.shape
    total = 0.0
    bad = np.int32(0)
    qy_prev[:] = 0.0
    for i in range(ny):
        row = x[i]
        # The last row is its own next row: dy = 0 there, as past the edge.
        below = x[i + 1] if i < ny - 1 else row
        # The row's sum in the data's dtype, then float64 (see _BLOCK).
        t_row = eps - eps
        nxt = row[1:]
        for j in range(nx - 1):
            v = row[j]
            bad = _count_nonfinite(bad, v)
            t, a, b = _tv_element(below[j] - v, nxt[j] - v, eps, eps2, c)
            t_row += t
            qy[j] = a
            qx[j] = b
        v = row[nx - 1]
        bad = _count_nonfinite(bad, v)
        t, a, b = _tv_element(below[nx - 1] - v, v - v, eps, eps2, c)
        total += np.float64(t_row + t)
        qy[nx - 1] = a
        qx[nx - 1] = b
        # The value alone skips only this write, at run time: value and
        # value_and_grad run the same machine code for the loop above, so
        # their sums are bit-equal on any CPU (a specialisation without the
        # write compiled that loop differently, 1 ulp apart in float64).
        if write:
            out = g[i]
            gv = qy_prev[0] - qy[0] - qx[0]
            out[0] = out[0] + gv if accumulate else gv
            # Views from 0 (see _pacbed_sums): ``qx[j - 1]`` kept this loop scalar.
            out1, up, here, left, right = out[1:], qy_prev[1:], qy[1:], qx[:-1], qx[1:]
            for j in range(nx - 1):
                gv = up[j] - here[j] + left[j] - right[j]
                out1[j] = out1[j] + gv if accumulate else gv
        qy_prev, qy = qy, qy_prev
    return total, bad


@_kernel(parallel=True)
def _tv(x3, eps, eps2, coef, g3, accumulate, write):
    n_slices, _, nx = x3.shape
    sums = np.empty(n_slices)
    bads = np.empty(n_slices)
    for s in prange(n_slices):
        t, b = _tv_slice(x3[s], eps, eps2, coef[s], g3[s] if write else g3[0], accumulate, write,
                         np.empty(nx, x3.dtype), np.empty(nx, x3.dtype), np.empty(nx, x3.dtype))
        sums[s] = t
        bads[s] = b
    return sums, bads.sum()


@one_at_a_time
def tv_value_grad(x, eps, eps2, scale, occu, out, accumulate):
    """Value and gradient of TV in one pass over ``x`` (N, O, Z, Y, X).

    Returns ``(sum_o occu_o sum(mag - eps) (float64), non-finite count)`` and
    writes ``[out +] scale * occu_o * grad`` into ``out`` (None: the value
    alone, the same number, and no gradient written). ``eps2`` is ``eps^2``
    rounded to the data's dtype, as the generic path adds it; ``eps``, ``eps2``
    and the coefficients enter in the data's dtype.
    """
    n, _, nz, ny, nx = x.shape
    # Slice (n, o, z) of the C-ordered (N*O*Z, Ny, Nx) stack has weight occu[o].
    coef = np.tile(np.repeat(np.asarray(occu, dtype=np.float64), nz), n)
    c = x.dtype.type
    g3 = np.empty((1, 1, nx), x.dtype) if out is None else out.reshape(-1, ny, nx)
    sums, bad = _tv(np.ascontiguousarray(x).reshape(-1, ny, nx), c(eps), c(eps2),
                    (coef * scale).astype(x.dtype), g3, accumulate, out is not None)
    return float(np.dot(coef, sums)), bad


@_kernel(inline="always")
def _row_sum(a, lo, w, acc):
    """``acc = sum_t w[t] * a[lo + t]`` over rows of ``a``, in float64.

    Three taps per sweep along the row: a sweep's loads and stores of
    ``acc`` are what it costs (1.5x faster than one tap per sweep, measured).
    """
    acc[:] = 0.0
    t = 0
    while t + 3 <= w.shape[0]:
        c0, c1, c2 = w[t], w[t + 1], w[t + 2]
        s0, s1, s2 = a[lo + t], a[lo + t + 1], a[lo + t + 2]
        for x in range(acc.shape[0]):
            acc[x] += c0 * s0[x] + c1 * s1[x] + c2 * s2[x]
        t += 3
    while t < w.shape[0]:
        c = w[t]
        src = a[lo + t]
        for x in range(acc.shape[0]):
            acc[x] += c * src[x]
        t += 1


@_kernel(inline="always")
def _put(row, coef, acc, accumulate):
    """``row = [row +] coef * acc``."""
    if accumulate:
        for x in range(acc.shape[0]):
            row[x] += coef * acc[x]
    else:
        for x in range(acc.shape[0]):
            row[x] = coef * acc[x]


@_kernel()
def _rows(a, lo, w, coef, out, accumulate):
    """``out[z, i] = [out[z, i] +] coef * sum_t w[i, t] * a[z, lo[i] + t]``,
    summed in float64 whatever the dtypes of ``a`` and ``out``.

    Every pass of loss_simlar is this combination of whole rows, which
    vectorises along the row: the x passes run on transposed planes (a
    gather along a row was 2-4x slower, measured).
    """
    acc = np.empty(a.shape[2])
    for z in range(a.shape[0]):
        for i in range(lo.shape[0]):
            _row_sum(a[z], lo[i], w[i], acc)
            _put(out[z, i], coef, acc, accumulate)


@_kernel()
def _rows_centred(x, lo, w, occ, out):
    """The first y pass for every mode, centred: ``out[o] = occ[o] * rows(x[o])
    - mean_o(occ * rows(x))`` for the first O - 1 modes, row by row."""
    last = x.shape[0] - 1
    acc = np.empty((x.shape[0], x.shape[3]))
    # The mean is built in the last mode's row: that mode's product, needed
    # only for the mean (its centred row is never written), starts the sum.
    mean = acc[last]
    for z in range(x.shape[1]):
        for i in range(lo.shape[0]):
            for o in range(last + 1):
                _row_sum(x[o, z], lo[i], w[i], acc[o])
                _put(acc[o], occ[o], acc[o], False)
            for o in range(last):
                for k in range(mean.shape[0]):
                    mean[k] += acc[o, k]
            for k in range(mean.shape[0]):
                mean[k] /= last + 1
            for o in range(last):
                row = out[o, z, i]
                for k in range(mean.shape[0]):
                    row[k] = acc[o, k] - mean[k]


@_kernel()
def _rows_modes(a, lo, w, occ, out, accumulate):
    """The last y pass of the adjoint for every mode: ``out[o] = [out[o] +]
    occ[o] * rows(a[o])`` for the first O - 1 modes of ``a``, and for the
    last mode ``occ[-1] * rows(-sum_o a[o])``, summed row by row."""
    last = a.shape[0]
    acc = np.empty(a.shape[3])
    rest = np.empty(a.shape[3])
    for z in range(a.shape[1]):
        for i in range(lo.shape[0]):
            rest[:] = 0.0
            for o in range(last):
                _row_sum(a[o, z], lo[i], w[i], acc)
                _put(out[o, z, i], occ[o], acc, accumulate)
                for x in range(acc.shape[0]):
                    rest[x] -= acc[x]
            _put(out[last, z, i], occ[last], rest, accumulate)


# The transpose goes by 8 x 8 tiles, whole tiles with constant trip counts
# (2x faster than 32 x 32 tiles clipped at the edges with min(), measured).
_TILE = 8


@_kernel()
def _transpose(a, out):
    """``out[z] = a[z].T``, tile by tile."""
    nz, na, nb = a.shape
    for z in range(nz):
        for i0 in range(0, na, _TILE):
            for j0 in range(0, nb, _TILE):
                at = a[z, i0:i0 + _TILE, j0:j0 + _TILE]
                ot = out[z, j0:j0 + _TILE, i0:i0 + _TILE]
                if at.shape[0] == _TILE and at.shape[1] == _TILE:
                    for j in range(_TILE):
                        for i in range(_TILE):
                            ot[j, i] = at[i, j]
                else:
                    for i in range(at.shape[0]):
                        for j in range(at.shape[1]):
                            ot[j, i] = at[i, j]


# The z passes are row passes over whole planes: ``_planes`` views a C
# (Z, Y, X) array as (1, Z, Y*X).
@_kernel(inline="always")
def _planes(a):
    return a.reshape((1, a.shape[0], a.shape[1] * a.shape[2]))


@_kernel(parallel=True, fastmath=_REASSOC)
def _simlar(x5, occ, fwd, adj, z_pass, scale, g5, need_grad, accumulate):
    (lz, wz), (ly, wy), (lx, wx) = fwd
    (lzt, wzt), (lyt, wyt), (lxt, wxt) = adj
    n, n_modes, nz, ny, nx = x5.shape
    oz, oy, ox = lz.shape[0], ly.shape[0], lx.shape[0]
    npix, m = nz * ny * nx, oz * ox * oy
    last = n_modes - 1
    sums = np.empty(n)
    bads = np.empty(n)
    for i in prange(n):
        # The std over modes sees only the deviations from the mode mean, and
        # blur and zoom (L) are linear: occ_o L x_o - mean = L c_o with
        # c_o = occ_o x_o - mean_o(occ x). The c_o sum to zero, so the last
        # mode's deviation is minus the others' sum, and so is its adjoint:
        # O - 1 x passes each way instead of O (half for 2 modes). The
        # deviations are taken after the y pass (y before x: it halves the
        # rows), so no full-size float64 grid is written. The output grid
        # (u) is held as (z, x, y) planes: the std does not mind the order.
        yo = np.empty((last, nz, oy, nx))
        tr = np.empty((nz, nx, oy))
        t2 = np.empty((nz, ox, oy))
        u = np.empty((n_modes, oz, ox, oy))
        uf = u.reshape((n_modes, m))
        bad = np.int32(0)
        for o in range(n_modes):
            xf = x5[i, o].reshape(npix)
            for k in range(npix):
                bad = _count_nonfinite(bad, xf[k])
        _rows_centred(x5[i], ly, wy, occ, yo)
        ul = uf[last]
        ul[:] = 0.0
        for o in range(last):
            _transpose(yo[o], tr)
            if z_pass:
                _rows(tr, lx, wx, 1.0, t2, False)
                _rows(_planes(t2), lz, wz, 1.0, _planes(u[o]), False)
            else:
                _rows(tr, lx, wx, 1.0, u[o], False)
            uo = uf[o]
            for k in range(m):
                ul[k] -= uo[k]
        # Loops over the whole output grid, one mode at a time, so that they
        # vectorise; the running sum next to the square root and the
        # division does too, by reassoc (the step 1.4x faster than with a
        # sequential sum in a loop of its own, measured).
        ss = np.zeros(m)
        for o in range(n_modes):
            uo = uf[o]
            for k in range(m):
                ss[k] += uo[k] * uo[k]
        total = 0.0
        for k in range(m):
            sd = np.sqrt(ss[k] / last)
            total += sd
            ss[k] = scale / sd if sd > 0 else 0.0
        sums[i] = total
        bads[i] = bad
        if need_grad:
            # Back through z and x for the first O - 1 modes into yo, then
            # the y pass writes every mode's gradient, the last as minus
            # the others' sum.
            for o in range(last):
                uo = uf[o]
                for k in range(m):
                    uo[k] *= ss[k]
                if z_pass:
                    _rows(_planes(u[o]), lzt, wzt, 1.0, _planes(t2), False)
                    _rows(t2, lxt, wxt, 1.0, tr, False)
                else:
                    _rows(u[o], lxt, wxt, 1.0, tr, False)
                _transpose(tr, yo[o])
            _rows_modes(yo, lyt, wyt, occ, g5[i], accumulate)
    total = 0.0
    for i in range(n):
        total += sums[i]
    return total, bads.sum()


@one_at_a_time
def simlar_value_grad(x, occu, bands, z_pass, scale, out, need_grad, accumulate):
    """``loss_simlar``'s ``T`` for one channel in one pass per pattern.

    Blur and zoom run as banded passes along y, x, z (``bands`` from
    :func:`.operators.axis_bands`; ``z_pass`` False where z is untouched),
    fused with the std over modes and, with ``need_grad``, the adjoint
    passes: ``out = [out +] dT/dx * scale`` where ``scale = w / (count (O -
    1))``. Returns ``(sum of the std over the output grid (float64),
    non-finite count of x)``.
    """
    fwd, adj = bands
    g = out if need_grad else np.empty((1,) * 5, dtype=x.dtype)
    return _simlar(np.ascontiguousarray(x), np.asarray(occu, dtype=np.float64), fwd, adj,
                   z_pass, float(scale), g, need_grad, accumulate)
