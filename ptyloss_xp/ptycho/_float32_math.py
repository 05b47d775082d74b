"""``log`` and ``pow`` for the numba kernels that vectorise on float32 data.

numba calls libm's scalar ``logf``/``powf`` for every element (the PyPI
llvmlite has no vector math library), so a loop that holds one stays scalar:
3.5 and 6-7 ns per element on the 2-core benchmark machine, ten times the
memory traffic of the PtyRAD terms. For float32 arguments both are written
here as arithmetic that LLVM turns into AVX2 vector code:

- ``log``: the classic range reduction and polynomial of the Cephes
  library's ``logf`` (S. L. Moshier, *Methods and Programs for Mathematical
  Functions*, 1989): ``x = 2^e m`` with ``m`` in ``[sqrt(1/2), sqrt(2))``
  read from the bits, ``log(m) = f - f^2/2 + f^3 P(f)`` with ``f = m - 1``
  and ``P`` of degree 8, and ``ln 2`` in two parts so that ``e ln 2`` adds
  no error; float32 and int32 arithmetic, eight lanes. 1.4 ns per element
  (one thread, under load). Over every positive finite float32 (all
  2,139,095,039, checked once against NumPy's float64 log rounded to
  float32) within 1 ulp of the correctly rounded log, equal to it for 99.4%.
- ``pow`` (``p > 0``): ``x^p = 2^(p log2 x)`` with the same ``e`` and
  ``log(m)``, ``y = p (e + log(m) / ln 2)`` in float64 (``e`` exact there;
  the float32 error of ``log(m)``, below 4e-8, enters only times ``p``),
  ``y = n + f`` with ``|f| <= 1/2``, ``2^f`` by its Taylor polynomial of
  degree 8 (relative error below 3e-10) and ``2^n`` built in the exponent
  bits, then rounded once to float32 (which gives IEEE's overflow to inf
  and gradual underflow). 4.1 ns per element against libm's 5.9-7.4. Within
  1 ulp of the correctly rounded power for ``p <= 2`` and 3 ulp up to
  ``p = 7.3`` (a sample of every binade, ``tests/test_float32_math.py``).

0, inf, NaN and negative arguments give IEEE's answers (``log``: -inf,
inf, NaN, NaN; ``x^p``: 0, inf, NaN, NaN). float64 arguments go to libm
unchanged; their loops stay scalar. The bit fields are read and written in
int32/int64 LLVM IR (:func:`_frexp`, :func:`_pow2_of_rounded`): numba's own
integer arithmetic widens to int64, and AVX2 has no packed int64 -> float
conversion or arithmetic shift. The functions are ordinary numba functions
that LLVM inlines into the kernels' loops; numba's own IR inlining
(``inline="always"``) gave the same code but compiled 5x slower and warned.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

__all__ = ["log", "pow"]

_P = tuple(np.float32(c) for c in (
    7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
    -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1))
_LN2_HI = np.float32(0.693359375)  # exact in 9 bits: e * _LN2_HI is exact
_LN2_LO = np.float32(-2.12194440e-4)
_HALF = np.float32(0.5)
_ONE = np.float32(1.0)
_TWO_23 = np.float32(2.0**23)
_LOG2E = 1.0 / math.log(2.0)
_ROUND = 6755399441055744.0  # 1.5 * 2^52: y + _ROUND holds round(y) in its low bits
# 2^f = exp(f ln 2) for |f| <= 1/2: Taylor to degree 8, relative error < 3e-10.
_EXP2 = tuple(math.log(2.0) ** k / math.factorial(k) for k in range(8, -1, -1))


@intrinsic
def _frexp(typingctx, x):
    """``(m, e)``, both float32, with ``x = 2^e m`` and ``m`` in [0.5, 1), for a
    positive normal float32: the exponent field and the mantissa bits."""
    def codegen(context, builder, sig, args):
        i32 = ir.IntType(32)
        b = builder.bitcast(args[0], i32)
        m = builder.or_(builder.and_(b, ir.Constant(i32, 0x007FFFFF)), ir.Constant(i32, 0x3F000000))
        e = builder.lshr(builder.and_(b, ir.Constant(i32, 0x7F800000)), ir.Constant(i32, 23))
        return context.make_tuple(builder, sig.return_type, [
            builder.bitcast(m, ir.FloatType()),
            builder.sitofp(builder.sub(e, ir.Constant(i32, 126)), ir.FloatType())])
    return types.UniTuple(types.float32, 2)(types.float32), codegen


@intrinsic
def _pow2_of_rounded(typingctx, t):
    """``2^n`` (float64) for ``t = y + _ROUND``, ``n = round(y)`` held in the low bits
    of ``t``, ``|n| <= 1022``: the exponent field built with 64-bit integer
    adds and shifts, which AVX2 has (it has no float64 -> int64 conversion)."""
    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        b = builder.add(builder.bitcast(args[0], i64), ir.Constant(i64, 1023))
        return builder.bitcast(builder.shl(b, ir.Constant(i64, 52)), ir.DoubleType())
    return types.float64(types.float64), codegen


@njit(error_model="numpy")
def _horner(c, x):
    """The polynomial with coefficients ``c`` (highest degree first) at ``x``."""
    r = c[0]
    for k in range(1, len(c)):
        r = r * x + c[k]
    return r


@njit(error_model="numpy")
def _reduce(x):
    """``(e, log(m))`` with ``x = 2^e m``, ``m`` in [sqrt(1/2), sqrt(2)), both float32,
    for ``0 < x < inf`` (subnormals first become normal: ``x 2^23``)."""
    sub = x < np.float32(1.1754944e-38)
    xs = x * _TWO_23 if sub else x
    m, e = _frexp(xs)
    e = e - np.float32(23.0) if sub else e
    low = m < np.float32(0.70710677)
    e = e - _ONE if low else e
    f = (m + m - _ONE) if low else (m - _ONE)
    z = f * f
    return e, f + (f * z * _horner(_P, f) - _HALF * z)


@njit(error_model="numpy")
def _logf(x):
    e, lm = _reduce(x)
    # ln 2 in two parts, the small one first (Cephes' order).
    r = (lm + e * _LN2_LO) + e * _LN2_HI
    # 0, inf, NaN and negatives: IEEE's answers.
    ok = (x > np.float32(0.0)) & (x < np.float32(np.inf))
    special = -np.float32(np.inf) if x == np.float32(0.0) else (x if x > np.float32(0.0) else np.float32(np.nan))
    return r if ok else special


@njit(error_model="numpy")
def _powf(x, p):
    ok = (x > np.float32(0.0)) & (x < np.float32(np.inf))
    e, lm = _reduce(x if ok else _ONE)
    # y = p log2(x) in float64: e is exact there, and the float32 error of
    # log(m) (< 4e-8) enters y only multiplied by p.
    y = np.float64(p) * (np.float64(e) + np.float64(lm) * _LOG2E)
    y = min(max(y, -1000.0), 1000.0)
    t = y + _ROUND
    frac = y - (t - _ROUND)
    r = np.float32(_horner(_EXP2, frac) * _pow2_of_rounded(t))
    # x^p for p > 0 at 0, inf, NaN and negatives: 0, inf, NaN, NaN.
    special = np.float32(0.0) if x == np.float32(0.0) else (x if x > np.float32(0.0) else np.float32(np.nan))
    return r if ok else special


def log(x):
    """Natural log: the vector form for float32, libm's for float64."""
    return np.log(x)


def pow(x, p):  # noqa: A001 - the kernels' x**p
    """``x**p`` for ``p > 0``: the vector form for float32, libm's for float64."""
    return x**p


@overload(log, jit_options={"error_model": "numpy"})
def _log_impl(x):
    if x == types.float32:
        return lambda x: _logf(x)
    return lambda x: np.log(x)


@overload(pow, jit_options={"error_model": "numpy"})
def _pow_impl(x, p):
    if x == types.float32:
        return lambda x, p: _powf(x, p)
    return lambda x, p: x**p
