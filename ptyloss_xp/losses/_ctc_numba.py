"""numba kernel of CTC's forward-backward recursion for NumPy float arrays.

The generic kernel in :mod:`.sequence` runs the recursion for the whole batch
and every extended label position at once, with a Python loop over time:
some twenty array calls per frame, each over all ``N (2S + 1)`` states,
impossible ones included. Here each sample is one scalar loop (samples in
parallel, ``prange``) over the states that can lie on a complete alignment
only: at frame ``t`` of ``T_n``, positions ``2 T_n - 2 t`` or more from the
end cannot reach it and positions beyond ``2 t + 1`` cannot be reached, so
they stay ``-inf`` without a log or an exp. Their posteriors are 0 in the
generic kernel too, and no reachable state reads them.

``alpha`` and ``beta`` stay in log space, but the log-add over a state's two
or three neighbours is shifted by the largest value of the whole frame
rather than of the three: each state's ``exp(alpha - max)`` is taken once
(and serves its three successors) and each new state costs one ``log`` of a
plain sum, against two ``exp``, a ``log1p`` and unpredictable branches for
a per-state log-add (2.4 times slower, measured). Where a shifted sum
underflows (its terms lie some 640 nats or more below the frame's best state)
the exact per-state log-add runs instead, so that scores of -1000 (a class
all but forbidden) give the generic kernel's numbers. The posteriors
``exp(alpha + beta - log p)`` come out as products of the two shifted sums
and one ``exp`` per frame (the exact form where that factor is huge). The
tests compare both kernels in float64 to 1e-12, scores of -2000 included.

Everything is computed in float64 whatever the input dtype, and the results
are cast to it. ``beta`` is not stored: the posteriors of frame ``t`` are
collected per class while ``beta_t`` is formed, from the stored ``alpha``.

The kernel trusts its inputs: :func:`accepts` sends anything outside the
domain (possible only with the value checks off) to the generic kernel, so
that such input never reads outside an array.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .._numba import one_at_a_time

__all__ = ["accepts", "per_sample"]

_NEG = -math.inf
# A scaled sum below _TINY may hold underflowed terms: the exact log-add
# runs. Posteriors come from scaled products while exp(d) < exp(_LARGE), so
# that every posterior above 1e-20 is a product of normal numbers.
_TINY = 2.0**-930
_LARGE = 575.0


@njit(cache=True, inline="always")
def _window(k, frames, t):
    """Positions ``[lo, hi)`` at frame ``t`` that lie on some complete alignment."""
    return max(0, k - 2 * (frames - t)), min(k, 2 * t + 2)


@njit(cache=True, inline="always")
def _logadd2(a, b):
    """``log(exp(a) + exp(b))``, exactly ``-inf`` when both are."""
    if a < b:
        a, b = b, a
    if b == _NEG:
        return a
    return a + math.log1p(math.exp(b - a))


@njit(cache=True, inline="always")
def _logadd3(a, b, c):
    """``log(exp(a) + exp(b) + exp(c))``, exactly ``-inf`` when all are."""
    if a < b:
        a, b = b, a
    if a < c:
        a, c = c, a
    if a == _NEG:
        return a
    return a + math.log1p(math.exp(b - a) + math.exp(c - a))


@njit(cache=True, parallel=True)
def _forward_backward(x, targets, input_lengths, target_lengths, blank, logits, need_grad,
                      loss, grad):
    """Write each sample's loss into ``loss`` (N,) and, with ``need_grad``,
    its gradient into ``grad`` (T, N, C): with respect to ``x`` as
    log-probabilities, or as logits through ``log_softmax`` when ``logits``."""
    t_max, n_batch, c = x.shape
    for n in prange(n_batch):
        frames = input_lengths[n]
        k = 2 * target_lengths[n] + 1
        ext = np.full(k, blank, dtype=np.int64)
        skip = np.zeros(k, dtype=np.bool_)
        for s in range(1, k, 2):
            ext[s] = targets[n, s // 2]
            # A label may be reached from two positions back (skipping a
            # blank) unless it repeats the label there.
            skip[s] = s >= 3 and ext[s] != ext[s - 2]
        # log_softmax = x - shift; expo holds the softmax.
        shift = np.zeros(frames)
        expo = np.empty((frames, c) if logits else (0, c))
        if logits:
            for t in range(frames):
                m = _NEG
                for j in range(c):
                    m = max(m, np.float64(x[t, n, j]))
                total = 0.0
                for j in range(c):
                    expo[t, j] = math.exp(np.float64(x[t, n, j]) - m)
                    total += expo[t, j]
                for j in range(c):
                    expo[t, j] /= total
                shift[t] = m + math.log(total)
        emit = np.empty((frames, k))
        for t in range(frames):
            for s in range(k):
                emit[t, s] = np.float64(x[t, n, ext[s]]) - shift[t]

        # Forward. alpha[t, s] in log space; pre[t, s] = exp(alpha[t, s] -
        # emit[t, s] - scale[t]), the linear sum over the predecessors, with
        # scale[t] the largest alpha of frame t - 1 (0 before the first).
        alpha = np.full((frames, k), _NEG)
        pre = np.zeros((frames, k))
        scale = np.zeros(frames)
        lin = np.zeros(k)  # exp(alpha_{t-1} - scale[t])
        lin[0] = 1.0  # alpha before the first frame: all mass on position 0
        top = 0.0
        for t in range(frames):
            lo, hi = _window(k, frames, t)
            scale[t] = top
            top = _NEG
            for s in range(lo, hi):
                p = lin[s]
                if s > 0:
                    p += lin[s - 1]
                if skip[s]:
                    p += lin[s - 2]
                pre[t, s] = p
                if p > _TINY:
                    a = emit[t, s] + (scale[t] + math.log(p))
                else:
                    # All predecessors underflowed in the scaled sum (t >= 1):
                    # the exact log-add.
                    a = emit[t, s] + _logadd3(alpha[t - 1, s],
                                              alpha[t - 1, s - 1] if s > 0 else _NEG,
                                              alpha[t - 1, s - 2] if skip[s] else _NEG)
                alpha[t, s] = a
                top = max(top, a)
            if top == _NEG:
                break
            for s in range(lo, hi):
                lin[s] = math.exp(alpha[t, s] - top)
        if frames == 0:
            ll = 0.0 if k == 1 else _NEG
        else:
            ll = _logadd2(alpha[frames - 1, k - 1], alpha[frames - 1, k - 2] if k > 1 else _NEG)
        loss[n] = -ll
        if not need_grad:
            continue
        for t in range(t_max):
            for j in range(c):
                grad[t, n, j] = 0.0
        if ll == _NEG:
            # Impossible alignment: gradient 0, never NaN.
            continue

        # Backward, in the same form: after = beta_t + emit_t in log space and
        # lin = exp(after - top); beta_{t-1} = top + log(sum over successors).
        beta = np.full(k, _NEG)
        beta[k - 1] = 0.0
        if k > 1:
            beta[k - 2] = 0.0
        after = np.full(k + 2, _NEG)  # two -inf beyond the end
        lin = np.zeros(k + 2)
        acc = np.empty(c)
        for t in range(frames - 1, -1, -1):
            lo, hi = _window(k, frames, t)
            top = _NEG
            for s in range(lo, hi):
                after[s] = beta[s] + emit[t, s]
                top = max(top, after[s])
            for s in range(lo, hi):
                lin[s] = math.exp(after[s] - top)
            # Posteriors gamma = exp(alpha + beta - ll) = pre * lin * exp(d);
            # sum(gamma) = 1 bounds the products from below unless exp(d) is
            # huge, where the exact form runs.
            d = scale[t] + top - ll
            acc[:] = 0.0
            occ = 0.0
            if d < _LARGE:
                f = math.exp(d)
                for s in range(lo, hi):
                    gamma = pre[t, s] * lin[s] * f
                    acc[ext[s]] += gamma
                    occ += gamma
            else:
                for s in range(lo, hi):
                    gamma = math.exp(alpha[t, s] + beta[s] - ll)
                    acc[ext[s]] += gamma
                    occ += gamma
            if logits:
                for j in range(c):
                    grad[t, n, j] = -acc[j] + expo[t, j] * occ
            else:
                for j in range(c):
                    grad[t, n, j] = -acc[j]
            if t == 0:
                break
            # Positions past hi or before lo hold lin = 0 and after = -inf,
            # whatever frame wrote the row last: the windows only grow
            # downwards and shrink upwards as t falls.
            lo, hi = _window(k, frames, t - 1)
            for s in range(lo, hi):
                jump = s + 2 < k and skip[s + 2]
                q = lin[s] + lin[s + 1]
                if jump:
                    q += lin[s + 2]
                if q > _TINY:
                    beta[s] = top + math.log(q)
                else:
                    beta[s] = _logadd3(after[s], after[s + 1], after[s + 2] if jump else _NEG)


def accepts(x, targets, input_lengths, target_lengths, blank):
    """Whether the kernel takes these arrays: NumPy, ``x`` float32 or float64,
    integer targets and lengths, all within the loss's domain."""
    if not (type(x) is np.ndarray and x.dtype in (np.float32, np.float64)
            and all(type(a) is np.ndarray and a.dtype.kind in "iu"
                    for a in (targets, input_lengths, target_lengths))
            and targets.ndim == 2):
        return False
    t_max, _, c = x.shape
    width = targets.shape[1]
    if not (np.all((input_lengths >= 0) & (input_lengths <= t_max))
            and np.all((target_lengths >= 0) & (target_lengths <= width))):
        return False
    labels = targets[np.arange(width)[None, :] < target_lengths[:, None]]
    return bool(np.all((labels >= 0) & (labels < c) & (labels != blank)))


@one_at_a_time
def per_sample(x, targets, input_lengths, target_lengths, blank, logits, need_grad):
    """``(loss, grad)`` as :func:`.sequence._per_sample` gives them, ``grad``
    ``None`` without ``need_grad``; the arrays must pass :func:`accepts`."""
    x = np.ascontiguousarray(x)
    as_int = lambda a: np.ascontiguousarray(a, dtype=np.int64)  # noqa: E731
    loss = np.empty(x.shape[1], dtype=x.dtype)
    grad = np.empty(x.shape if need_grad else (0, 0, 0), dtype=x.dtype)
    args = (as_int(targets), as_int(input_lengths), as_int(target_lengths))
    _forward_backward(x, *args, blank, logits, need_grad, loss, grad)
    return loss, (grad if need_grad else None)
