"""Gradient checks and input generators for any registered loss.

:func:`check_grad` compares a loss's analytic gradient with 4th-order central
finite differences in float64. :func:`sample_inputs` draws valid inputs from
a loss's declared domain with NumPy; :func:`inputs` is the hypothesis
strategy doing the same, edges included (hypothesis is needed only for it).

>>> import ptyloss_xp as pl
>>> from ptyloss_xp.testing import check_grad, sample_inputs
>>> loss = pl.get("loss_single")
>>> arrays = sample_inputs(loss, seed=0)
>>> check_grad(loss, **arrays).max_rel_error < 1e-7
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ._backend import namespace
from ._validate import int_bound

__all__ = ["check_grad", "GradCheck", "sample_inputs", "inputs", "dtype_tolerance"]


def dtype_tolerance(dtype) -> float:
    """Relative tolerance for comparing a result computed in ``dtype`` with a
    float64 reference: ``sqrt(eps)`` of the dtype, i.e. about 3e-4 for
    float32 and 1.5e-8 for float64."""
    return float(np.sqrt(np.finfo(np.dtype(str(dtype).split(".")[-1])).eps))


@dataclass
class GradCheck:
    """Result of :func:`check_grad`: the worst relative error per argument."""

    errors: dict = field(default_factory=dict)

    @property
    def max_rel_error(self) -> float:
        values = list(self.errors.values())
        return float("nan") if any(v != v for v in values) else max(values, default=0.0)


def _to_numpy64(x):
    """Host float64/complex128/int64 copy of an array of any namespace."""
    if hasattr(x, "get"):  # CuPy
        x = x.get()
    a = np.asarray(x) if not hasattr(x, "__dlpack__") else np.from_dlpack(x)
    if np.issubdtype(a.dtype, np.complexfloating):
        return a.astype(np.complex128)
    if np.issubdtype(a.dtype, np.floating):
        return a.astype(np.float64)
    return a.copy()


def _headroom(arg, x):
    """Distance from each element to the nearest bound of ``arg``'s domain."""
    d = np.full(x.shape, np.inf)
    if arg.kind != "real":
        return d
    if arg.low is not None:
        d = np.minimum(d, x - arg.low)
    if arg.high is not None:
        d = np.minimum(d, arg.high - x)
    return d


def check_grad(loss, *arrays, rtol=None, step=1e-3, max_elements=200, n_directions=6,
               seed=0, raise_on_fail=True, **kw_arrays):
    """Check ``loss.grad`` against 4th-order central finite differences.

    The analytic gradient is computed on the arrays as given (their
    namespace, device and dtype); the finite differences on float64 NumPy
    copies. Every element of each ``wrt`` argument with at most ``max_elements`` elements is perturbed in turn
    (complex ones in the real and the imaginary part), larger ones along
    ``n_directions`` random directions. Steps are ``step * min(max(1, |x|),
    distance to the domain bound)`` so that ``x ± 2h`` stays in the domain.

    The error of an argument is ``max|fd - analytic| / max|analytic|``.

    Parameters
    ----------
    loss : Loss
        A built loss (any registered one).
    *arrays, **kw_arrays
        Its inputs, as for ``loss.value``.
    rtol : float, optional
        Largest allowed error; 1e-7 for float64 inputs, 2e-3 for float32.
    raise_on_fail : bool
        Raise ``AssertionError`` when an error exceeds ``rtol``.

    Returns
    -------
    GradCheck
    """
    names = [a.name for a in loss.args]
    bound = dict(zip(names, arrays))
    bound.update(kw_arrays)
    namespace(bound)  # a clear error for mixed namespaces before copying
    host = {k: (None if v is None else _to_numpy64(v)) for k, v in bound.items()}
    if rtol is None:
        single = any(str(v.dtype).endswith(("float32", "complex64"))
                     for v in bound.values() if v is not None)
        rtol = 2e-3 if single else 1e-7
    specs = {a.name: a for a in loss.args}

    def f(values):
        v = np.asarray(loss.value(**values))
        return float(np.sum(v))

    _, g = loss.value_and_grad(**bound)
    grads = [_to_numpy64(gi) for gi in ((g,) if len(loss.wrt) == 1 else g)]
    rng = np.random.default_rng(seed)
    out = GradCheck()
    for name, ga in zip(loss.wrt, grads):
        x = host[name]
        room = _headroom(specs[name], x)
        kink = loss.nonsmooth_distance(name, host)
        if kink is not None:
            room = np.minimum(room, kink)
        h = step * np.minimum(np.maximum(1.0, np.abs(x)), room / 2.5)
        parts = (1.0, 1j) if np.iscomplexobj(x) else (1.0,)

        def fd(direction, t):
            vals = []
            for c in (2, 1, -1, -2):
                trial = dict(host)
                trial[name] = x + c * t * direction
                vals.append(f(trial))
            return (-vals[0] + 8 * vals[1] - 8 * vals[2] + vals[3]) / (12 * t)

        if x.size <= max_elements:
            num = np.zeros_like(ga)
            for idx in np.ndindex(x.shape):
                for unit in parts:
                    e = np.zeros_like(x)
                    e[idx] = unit
                    d = fd(e, h[idx])
                    num[idx] += d if unit == 1.0 else 1j * d
            scale = max(np.max(np.abs(ga)), np.finfo(float).tiny)
            err = float(np.max(np.abs(num - ga)) / scale)
        else:
            err = 0.0
            for _ in range(n_directions):
                v = rng.standard_normal(x.shape)
                if np.iscomplexobj(x):
                    v = v + 1j * rng.standard_normal(x.shape)
                t = float(np.min(h / np.maximum(np.abs(v), 1e-12)))
                t = min(t, step * max(1.0, float(np.max(np.abs(x)))))
                num = fd(v, t)
                ana = float(np.real(np.vdot(ga, v)))
                scale = max(float(np.sum(np.abs(ga) * np.abs(v))), np.finfo(float).tiny)
                err = max(err, abs(num - ana) / scale)
        out.errors[name] = err
    # Written so that a NaN error (say, a step of 0 on a closed bound) fails.
    if raise_on_fail and not out.max_rel_error <= rtol:
        msg = f"{loss!r}: gradient differs from finite differences: {out.errors} > rtol={rtol:g}"
        raise AssertionError(msg)
    return out


_DTYPES = {
    "float32": ("float32", "complex64"),
    "float64": ("float64", "complex128"),
}


def _draw_sizes(loss, rng_int):
    dims = {}
    for a in loss.args:
        for d in a.shape:
            if d != "*" and d not in dims:
                lo = max(loss.dims_min.get(d, 1), loss.sample_dims_min.get(d, 1))
                dims[d] = lo + rng_int(0, 3)
    # "*" may be empty only where every argument that has it keeps other
    # dimensions, e.g. plain (N, C) logits for a loss taking (N, C, *).
    alone = any(a.shape == ("*",) for a in loss.args)
    ndim_star = rng_int(1 if alone else 0, 2)
    star = tuple(rng_int(1, 4) for _ in range(ndim_star))
    return dims, star


def _shape(arg, dims, star):
    out = []
    for d in arg.shape:
        out.extend(star if d == "*" else (dims[d],))
    return tuple(out)


def sample_inputs(loss, xp=None, dtype="float64", seed=0, optional=True, sizes=None):
    """Random valid inputs for ``loss``, drawn from its declared domain.

    Values keep a margin from every bound. Returns a dict of arrays of
    namespace ``xp`` (NumPy when ``None``) in precision ``dtype``.
    """
    rng = np.random.default_rng(seed)
    dims, star = _draw_sizes(loss, lambda lo, hi: int(rng.integers(lo, hi + 1)))
    if sizes:
        dims.update({k: v for k, v in sizes.items() if k != "*"})
        star = tuple(sizes.get("*", star))
    out = {}
    for a in loss.args:
        if a.optional and not optional:
            continue
        shape = _shape(a, dims, star)
        out[a.name] = _sample_values(a, shape, dims, rng)
    out = loss.fix_sample(out, rng)
    return _convert(out, xp, dtype)


def _sample_values(a, shape, dims, rng):
    if a.kind == "int":
        high = int_bound(a.high, dims)
        return rng.integers(a.low, high, size=shape)
    if a.kind == "choice":
        return rng.choice(np.asarray(a.values, dtype=float), size=shape)
    if a.kind == "complex":
        return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    if a.simplex:
        p = rng.uniform(0.05, 1.0, size=shape)
        return p / p.sum(axis=-1, keepdims=True)
    lo, hi = a.low, a.high
    if lo is not None and hi is not None:
        m = 0.05 * (hi - lo)
        return rng.uniform(lo + m, hi - m, size=shape)
    if lo is not None:
        return lo + np.exp(rng.normal(0.0, 0.7, size=shape))
    if hi is not None:
        return hi - np.exp(rng.normal(0.0, 0.7, size=shape))
    return rng.standard_normal(shape)


def _convert(host, xp, dtype):
    if xp is None:
        xp = np
    real, cplx = _DTYPES[str(dtype)]
    out = {}
    for k, v in host.items():
        if np.iscomplexobj(v):
            dt = getattr(xp, cplx)
        elif np.issubdtype(v.dtype, np.integer):
            dt = xp.int64
        else:
            dt = getattr(xp, real)
        out[k] = xp.asarray(v, dtype=dt)
    return out


def inputs(loss, xp=None, dtype="float64"):
    """Hypothesis strategy of valid input dicts for ``loss``, edges included.

    Draws dimension sizes from their minimum up (one sample and one class
    included) and values over the whole declared domain (within +-1e3 where
    unbounded): bounds themselves where closed, zeros, magnitudes down to
    1e-30.
    """
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    @st.composite
    def draw(drw):
        dims, star = _draw_sizes(loss, lambda lo, hi: drw(st.integers(lo, hi)))
        host = {}
        for a in loss.args:
            if a.optional and not drw(st.booleans()):
                continue
            shape = _shape(a, dims, star)
            host[a.name] = drw(_array_strategy(st, hnp, a, shape, dims))
        host = loss.fix_sample(host, np.random.default_rng(drw(st.integers(0, 2**32 - 1))))
        return _convert(host, xp, dtype)

    return draw()


def _array_strategy(st, hnp, a, shape, dims):
    if a.kind == "int":
        high = int_bound(a.high, dims)
        return hnp.arrays(np.int64, shape, elements=st.integers(a.low, high - 1))
    if a.kind == "choice":
        return hnp.arrays(np.float64, shape, elements=st.sampled_from(a.values))
    if a.kind == "complex":
        el = st.complex_numbers(max_magnitude=1e3, allow_nan=False, allow_infinity=False)
        return hnp.arrays(np.complex128, shape, elements=el)
    lo = -1e3 if a.low is None else a.low
    hi = 1e3 if a.high is None else a.high
    el = st.floats(lo, hi, exclude_min=a.low is not None and a.low_open,
                   exclude_max=a.high is not None and a.high_open,
                   allow_nan=False, allow_infinity=False, allow_subnormal=False)
    # Magnitudes below 1e-30 (other than 0) are left out: they only test
    # float64 overflow of 1/x, which no physical input approaches.
    zero_ok = lo < 0 < hi or (lo == 0 and not a.low_open) or (hi == 0 and not a.high_open)

    def squash(v):
        if v == 0.0 or abs(v) >= 1e-30:
            return v
        return 0.0 if zero_ok else math.copysign(1e-30, v)

    el = el.map(squash)
    arr = hnp.arrays(np.float64, shape, elements=el)
    if a.simplex:
        # Exact zeros (one-hot rows) are drawn where the domain allows them.
        floor = 1e-3 if a.low_open else 0.0

        def normalise(p):
            p = np.abs(p) + floor
            p[p.sum(axis=-1) == 0] = 1.0
            return p / p.sum(axis=-1, keepdims=True)
        arr = arr.map(normalise)
    return arr
