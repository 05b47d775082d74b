"""Cache-blocked NumPy kernels of the three diffraction-pattern terms.

The generic kernels in :mod:`ptyloss_xp.ptycho.terms` are written once for
every array API namespace, so each intermediate (``I^p``, ``D^p``, the
residual, the slope, ...) is a full (N, Ky, Kx) array: every NumPy operation
streams main memory and allocates (and page-faults) a new buffer. Here the
data terms walk the N axis in chunks small enough that a chunk's temporaries
stay in the L2 cache, reused from chunk to chunk:

- pass 1 reads each input once, computes the powers once, accumulates the
  sums the value needs (in float64, so float32 data are never upcast) and
  writes the unscaled gradient (the chain-rule direction) into the output;
- pass 2 multiplies the output in place by the one scalar that only the full
  sums determine.

Value and gradient thus cost two passes over memory, and the only full-size
allocation is the returned gradient. The constant ``p`` of the slope
``p I^(p-1)`` is folded into the pass-2 scalar. :mod:`terms` keeps the
scalar logic (checks, normalisation, the zero subgradient) and calls these
kernels only for NumPy arrays; the generic path stays the reference and the
tests compare the two.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pointwise_sums", "pacbed_sums", "scale_in_place", "broadcast_copy"]

# Bytes of one chunk temporary. Three or four of them plus the chunk of each
# input stay within a 2 MiB L2; much smaller chunks pay NumPy's per-call
# overhead (about a microsecond per ufunc call) more than they gain.
_CHUNK_BYTES = 1 << 18


def _blocks(model, meas, w, n_scratch):
    """Flatten the patterns to (N, K), K = Ky*Kx, and cut N into chunks.

    Returns
    -------
    m2, d2 : numpy.ndarray
        ``model`` and ``meas`` as (N, K); views when contiguous.
    w1 : numpy.ndarray or None
        The (K,) weight, or ``None`` without one (elementwise products skip it).
    w_sum : numpy.ndarray
        The vector the chunk sums are taken against: ``w1``, or ones.
    chunks : list of (slice, list of numpy.ndarray)
        Each slice of N with ``n_scratch`` scratch arrays shaped like the
        chunk: views of the same buffers, so the last, shorter chunk uses
        their leading rows.
    """
    n = model.shape[0]
    m2, d2 = model.reshape(n, -1), meas.reshape(n, -1)
    k = m2.shape[1]
    rows = max(1, _CHUNK_BYTES // (k * model.dtype.itemsize))
    buffers = [np.empty((rows, k), dtype=model.dtype) for _ in range(n_scratch)]
    chunks = [(slice(s, min(s + rows, n)), [b[: min(rows, n - s)] for b in buffers])
              for s in range(0, n, rows)]
    w1 = None if w is None else w.reshape(-1)
    w_sum = np.ones(k, dtype=model.dtype) if w1 is None else w1
    return m2, d2, w1, w_sum, chunks


def _power(x, p, out):
    """``x**p`` for ``x >= 0``, written into ``out`` unless ``p == 1``.

    With ``p == 1`` the input itself comes back, so callers never write into
    the result. ``sqrt`` is several times cheaper than ``pow``. Other powers
    go through ``exp(p log x)``: NumPy's vectorised ``pow`` drops to a scalar
    loop for a whole vector when it meets a 0, and measured patterns are
    mostly zeros at high angles (five times slower on Poisson counts), while
    ``log(0) = -inf`` gives ``exp(-inf) = 0`` at full speed. The kernels run
    under ``errstate(divide="ignore")`` for that ``log(0)``. NumPy's ``log``
    reading from main memory runs two to three times slower than on a cached
    copy (measured on float32 chunks), so the chunk is copied into ``out``
    first.
    """
    if p == 1:
        return x
    if p == 0.5:
        return np.sqrt(x, out=out)
    np.copyto(out, x)
    np.log(out, out=out)
    np.multiply(out, p, out=out)
    return np.exp(out, out=out)


def _wsum(x, w):
    """Sum of a (rows, K) chunk weighted per pixel by ``w`` (K,), ones if unweighted.

    A BLAS matrix-vector product sums about twice as fast as ``numpy.sum``.
    The chunk's partial sum is taken in the data's precision and returned as
    a float64 scalar, so that the sum over chunks accumulates in float64.
    NumPy scalars, unlike Python floats, divide by zero as IEEE says
    (``inf``, a warning) when value checks are off.
    """
    return np.float64(np.sum(x @ w))


def _chain(q, x, xpow, p, out, buf):
    """``out = q * x**(p - 1)``: the chain rule through ``x**p`` without its constant ``p``.

    ``x**(p-1)`` is formed before it meets ``q`` (as the generic kernel forms
    its slope) so that tiny ``x`` cannot overflow an intermediate product.
    With ``p == 1`` there is no chain factor and the caller writes ``q``
    straight into the gradient instead.
    """
    if p == 0.5:
        np.divide(q, xpow, out=out)
    else:
        np.divide(xpow, x, out=buf)
        np.multiply(q, buf, out=out)


def pointwise_sums(kind, model, meas, w, p, eps, need_grad):
    """Pass 1 of ``loss_single`` (``kind="single"``) or ``loss_poissn`` (``"poissn"``).

    Parameters
    ----------
    kind : {"single", "poissn"}
        Which term.
    model, meas : numpy.ndarray
        Model and measured patterns, (N, Ky, Kx), one floating dtype.
    w : numpy.ndarray or None
        Per-pixel weight (Ky, Kx).
    p : float
        ``dp_pow``.
    eps : float
        ``loss_poissn``'s shift inside the log (unused for ``"single"``).
    need_grad : bool
        Whether to write the gradient direction.

    Returns
    -------
    sum_term : numpy.float64
        ``sum(W (I^p - D^p)^2)`` for ``"single"``;
        ``sum(W (D^p log(I^p + eps) - I^p))`` for ``"poissn"``.
    sum_d : numpy.float64
        ``sum(W D^p)``.
    direction : numpy.ndarray or None
        Shaped like ``model``: ``W r I^(p-1)`` with ``r = I^p - D^p``
        (``"single"``), or ``W (D^p / (I^p + eps) - 1) I^(p-1)``
        (``"poissn"``); the gradient is this times a scalar (see
        :func:`scale_in_place`). ``None`` without ``need_grad``.
    """
    m2, d2, w1, w_sum, chunks = _blocks(model, meas, w, 4)
    g = np.empty_like(m2) if need_grad else None
    sum_term = sum_d = np.float64(0.0)
    # With p == 1 the direction is ``q`` itself: its last step writes it
    # straight into the gradient.
    direct = need_grad and p == 1
    with np.errstate(divide="ignore"):
        for sl, (bi, bd, bq, bs) in chunks:
            x = m2[sl]
            ip = _power(x, p, bi)
            dp = _power(d2[sl], p, bd)
            sum_d += _wsum(dp, w_sum)
            q_out = g[sl] if direct else bs
            if kind == "single":
                if w1 is None:
                    r = q = np.subtract(ip, dp, out=q_out)
                else:
                    r = np.subtract(ip, dp, out=bq)
                    q = np.multiply(r, w1, out=q_out)
                sum_term += np.float64(np.vdot(q, r))
            else:
                shifted = np.add(ip, eps, out=bq)
                terms = np.log(shifted, out=bs)
                np.multiply(dp, terms, out=terms)
                np.subtract(terms, ip, out=terms)
                sum_term += _wsum(terms, w_sum)
                if not need_grad:
                    continue
                q = np.divide(dp, shifted, out=bq)
                if w1 is None:
                    q = np.subtract(q, 1.0, out=q_out)
                else:
                    np.subtract(q, 1.0, out=q)
                    q = np.multiply(q, w1, out=q_out)
            if need_grad and not direct:
                # ``bd`` (D^p) is no longer needed: it is the chain rule's scratch.
                _chain(q, x, ip, p, g[sl], bd)
    return sum_term, sum_d, (None if g is None else g.reshape(model.shape))


def pacbed_sums(model, meas, w, p):
    """Pass 1 of ``loss_pacbed``: the two PACBED sums and ``sum(W D^p)``.

    Returns
    -------
    sum_i, sum_dn : numpy.ndarray
        ``sum_n I`` and ``sum_n D``, (Ky, Kx), in the data's dtype, summed
        in order of n as the generic ``mean(axis=0)`` does.
    sum_d : numpy.float64
        ``sum(W D^p)`` over all patterns.
    """
    m2, d2, _, w_sum, chunks = _blocks(model, meas, w, 1)
    # ``I`` is read only here: one streaming reduction needs no chunks.
    sum_i = np.add.reduce(m2, axis=0)
    sum_dn = np.zeros_like(sum_i)
    sum_d = np.float64(0.0)
    with np.errstate(divide="ignore"):
        for sl, (bd,) in chunks:
            d = d2[sl]
            # Row by row: a reduction over a chunk's few rows (one for
            # 256 x 256 patterns) takes NumPy's slow generic path.
            for row in d:
                np.add(sum_dn, row, out=sum_dn)
            sum_d += _wsum(_power(d, p, bd), w_sum)
    shape = model.shape[1:]
    return sum_i.reshape(shape), sum_dn.reshape(shape), sum_d


def scale_in_place(g, c):
    """Pass 2: ``g *= c`` on the kernel's own output, keeping its dtype."""
    np.multiply(g, float(c), out=g)
    return g


def broadcast_copy(g, shape):
    """A new C-contiguous array of ``shape`` holding ``g`` broadcast along its leading axes.

    Assigning into an empty array is one streaming write; ``copy()`` of a
    ``broadcast_to`` view walks zero strides and is about three times slower.
    """
    out = np.empty(shape, dtype=g.dtype)
    out[...] = g
    return out
