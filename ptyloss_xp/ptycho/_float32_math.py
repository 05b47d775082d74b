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
  no error; float32 and int32 arithmetic with fused multiply-adds, eight
  lanes. 1.0 ns per element (one thread). Over every positive finite
  float32 (all 2,139,095,039, checked once against libm's float64 log
  rounded to float32) within 1 ulp of the correctly rounded log, equal to
  it for 99.42%.
- ``pow`` (``p > 0``): ``x^p = 2^(p log2 x)`` with the same ``e`` and
  ``log(m)``, all in float32. ``p e`` is taken exactly as ``p_hi e + p_lo
  e`` (``p_hi``: the 12 leading bits of ``p``, so both products are
  exact); ``n`` is the nearest integer to ``p log2 x`` and ``f = (p_hi e -
  n) + p_lo e + p log(m) log2(e)``, ``|f| <= 1/2``, so only small numbers
  are rounded. ``2^f`` is a degree-7 polynomial (a Chebyshev fit of ``2^f``
  on [-1/2, 1/2], weighted for relative error, coefficients rounded to
  float32: relative error 2.8e-9), and ``2^n`` is two exact powers of two
  built in the exponent bits (``n`` clamped to [-252, 254]), so overflow
  gives inf and underflow is gradual, with one rounding. 1.6 ns per element
  (one thread, a loop that only sums powers) against 6.7 for libm's
  ``powf`` in the same run; inside the kernels, with their other work,
  about 2. Against the correctly rounded power, on a
  sample of every binade (16.7 million values; ``tests/test_float32_math.py``
  takes 0.5 million): within 1 ulp for ``p <= 1`` (equal for about 93%),
  2 ulp up to ``p = 3``, 3 at ``p = 4``, 5 at ``p = 7.3``.

0, inf, NaN and negative arguments give IEEE's answers (``log``: -inf,
inf, NaN, NaN; ``x^p``: 0, inf, NaN, NaN). float64 arguments go to libm
unchanged; their loops stay scalar. numba's cache keys a kernel on its own
file only: after editing this module, delete the kernels' cached
``__pycache__/*.nbi`` and ``*.nbc`` files, or they keep the old code. The
bit fields are read and written in
int32 LLVM IR (:func:`_frexp`, :func:`_high_bits`, :func:`_two_powers`):
numba's own integer arithmetic widens to int64, which AVX2 cannot convert
or shift as vectors. The functions are ordinary numba functions
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

_P0, _P1, _P2, _P3, _P4, _P5, _P6, _P7, _P8 = (np.float32(c) for c in (
    7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
    -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1))
_LN2_HI = np.float32(0.693359375)  # exact in 9 bits: e * _LN2_HI is exact
_LN2_LO = np.float32(-2.12194440e-4)
_HALF = np.float32(0.5)
_ONE = np.float32(1.0)
_TWO_23 = np.float32(2.0**23)
_LOG2E = np.float32(1.0 / math.log(2.0))
# 2^f on [-1/2, 1/2], highest degree first (see the module's docstring).
_Q7, _Q6, _Q5, _Q4, _Q3, _Q2, _Q1, _Q0 = (np.float32(c) for c in (
    1.5195581e-05, 1.546924e-04, 1.333395e-03, 9.618027e-03, 5.5504102e-02, 2.402265e-01,
    6.931472e-01, 1.0))
# The polynomials are written out, not looped over a tuple: a tuple indexed
# in a loop stays a memory array, and the element loop then runs 2-3x slower.
# "contract" lets LLVM use fused multiply-adds (one rounding instead of two).
# "forceinline" marks them alwaysinline for LLVM: a kernel that calls them at
# several places otherwise gets calls, and its loop stays scalar (2.5x
# slower, measured).
_MATH = {"error_model": "numpy", "fastmath": {"contract"}, "forceinline": True}


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
def _high_bits(typingctx, p):
    """``p`` with all but the 12 leading bits of its significand cleared."""
    def codegen(context, builder, sig, args):
        i32 = ir.IntType(32)
        b = builder.and_(builder.bitcast(args[0], i32), ir.Constant(i32, -4096))
        return builder.bitcast(b, ir.FloatType())
    return types.float32(types.float32), codegen


@intrinsic
def _two_powers(typingctx, n):
    """``(2^a, 2^b)``, float32, with ``a + b = n`` for an integer-valued float32
    ``n`` clamped to [-252, 254]: both are normal numbers, and ``v 2^a 2^b``
    rounds once, to inf past the largest float32 and gradually to 0."""
    def codegen(context, builder, sig, args):
        i32 = ir.IntType(32)
        k = builder.fptosi(args[0], i32)
        lo, hi = ir.Constant(i32, -252), ir.Constant(i32, 254)
        k = builder.select(builder.icmp_signed("<", k, lo), lo, k)
        k = builder.select(builder.icmp_signed(">", k, hi), hi, k)
        a = builder.ashr(k, ir.Constant(i32, 1))

        def power(v):
            field = builder.shl(builder.add(v, ir.Constant(i32, 127)), ir.Constant(i32, 23))
            return builder.bitcast(field, ir.FloatType())
        return context.make_tuple(builder, sig.return_type, [power(a), power(builder.sub(k, a))])
    return types.UniTuple(types.float32, 2)(types.float32), codegen


@njit(**_MATH)
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
    poly = ((((((((_P0 * f + _P1) * f + _P2) * f + _P3) * f + _P4) * f + _P5) * f + _P6) * f
             + _P7) * f + _P8)
    return e, f + (f * z * poly - _HALF * z)


@njit(**_MATH)
def _logf(x):
    e, lm = _reduce(x)
    # ln 2 in two parts, the small one first (Cephes' order).
    r = (lm + e * _LN2_LO) + e * _LN2_HI
    # 0, inf, NaN and negatives: IEEE's answers.
    ok = (x > np.float32(0.0)) & (x < np.float32(np.inf))
    special = -np.float32(np.inf) if x == np.float32(0.0) else (x if x > np.float32(0.0) else np.float32(np.nan))
    return r if ok else special


@njit(**_MATH)
def _powf(x, p):
    # The reduction runs on every lane, specials included (their lanes give
    # meaningless numbers that the last select replaces): a select of a safe
    # argument first made the loop 1.6x slower, measured.
    e, lm = _reduce(x)
    p_hi = _high_bits(p)
    a = p_hi * e
    b = (p - p_hi) * e
    c = p * (lm * _LOG2E)
    n = np.rint(a + (b + c))
    f = ((a - n) + b) + c
    poly = ((((((_Q7 * f + _Q6) * f + _Q5) * f + _Q4) * f + _Q3) * f + _Q2) * f + _Q1) * f + _Q0
    s1, s2 = _two_powers(n)
    r = (poly * s1) * s2
    # x^p for p > 0 at 0, inf, NaN and negatives: 0, inf, NaN, NaN; "+ 0"
    # turns -0 into +0.
    ok = (x > np.float32(0.0)) & (x < np.float32(np.inf))
    special = x + np.float32(0.0) if x >= np.float32(0.0) else np.float32(np.nan)
    return r if ok else special


def log(x):
    """Natural log: the vector form for float32, libm's for float64."""
    return np.log(x)


def pow(x, p):  # noqa: A001 - the kernels' x**p
    """``x**p`` for ``p > 0``: the vector form for float32, libm's for float64."""
    return x**p


@overload(log, jit_options={"error_model": "numpy", "forceinline": True})
def _log_impl(x):
    if x == types.float32:
        return lambda x: _logf(x)
    return lambda x: np.log(x)


@overload(pow, jit_options={"error_model": "numpy", "forceinline": True})
def _pow_impl(x, p):
    if x == types.float32:
        return lambda x, p: _powf(x, p)
    return lambda x, p: x**p
