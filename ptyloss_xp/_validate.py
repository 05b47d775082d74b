"""Input domains and parameter specifications, and the one place they are checked.

A loss declares its inputs as :class:`Arg` records and its parameters as
:class:`Param` records. Validation, the hypothesis strategies in
:mod:`ptyloss_xp.testing` and the generated docs all read these records, so
the domain a loss states is the domain it enforces.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import numbers
import sys
from dataclasses import dataclass
from typing import Any

import array_api_compat

from ._backend import device_of, namespace

__all__ = ["Arg", "Param", "REDUCTION", "FLOAT32_TINY", "check_values", "value_checks_enabled",
           "require", "deferred_checks"]

# float32's smallest normal number: the least positive parameter a loss may
# divide float32 data by (1 / FLOAT32_TINY = 8.5e37 is finite, 1 / 1e-45 is not).
FLOAT32_TINY = 2.0**-126

# A context variable, not a module global: a thread (a solver's, or a Dask
# worker's running one chunk) switching checks off leaves the others' on.
_VALUE_CHECKS: contextvars.ContextVar = contextvars.ContextVar("ptyloss_xp_value_checks",
                                                               default=True)


def value_checks_enabled() -> bool:
    return _VALUE_CHECKS.get()


@contextlib.contextmanager
def check_values(enabled: bool):
    """Switch the checks of input *values* on or off inside a ``with`` block.

    Shape, dtype and namespace checks read only metadata and always run.
    Value checks (intensities >= 0, labels in range, ...) reduce over the data
    and bring one boolean back to the host, which on a GPU is a device
    synchronisation per call. A solver that has validated its data once can
    turn them off in its inner loop:

    >>> import numpy as np, ptyloss_xp as pl
    >>> loss = pl.get("loss_single")
    >>> with pl.check_values(False):
    ...     float(loss.value(np.full((1, 2, 2), 4.0), np.ones((1, 2, 2))))
    1.0

    The switch holds in the current thread (it is a context variable): a
    thread started inside the block, or running beside it, keeps its own
    setting (on by default). Dask graphs built inside the block run their
    chunks with the setting they were built with, on any worker.
    """
    token = _VALUE_CHECKS.set(bool(enabled))
    try:
        yield
    finally:
        _VALUE_CHECKS.reset(token)


_DEFERRED: contextvars.ContextVar = contextvars.ContextVar("ptyloss_xp_deferred", default=None)

_JIT_ADVICE = (
    " -- this check of input values cannot run on traced arrays under jax.jit "
    "(it needs the values on the host). Check the data once by calling the loss "
    "on the concrete arrays outside jit, then trace the jitted function inside "
    "`with ptyloss_xp.check_values(False):`."
)


def require(xp, ok, message, detail=None):
    """Raise ``ValueError`` unless the 0-d boolean array ``ok`` is true.

    The one way a loss checks a rule about its input *values* (a domain, a
    positive normaliser, a label that counts). It does nothing when value
    checks are off (:func:`check_values`). Where the decision happens
    depends on the arrays:

    - eager arrays (NumPy, CuPy, PyTorch, JAX outside ``jit``,
      array-api-strict): now, with one device-to-host read of ``ok``; the
      error is ``message`` followed by ``detail()`` (a callable describing
      the offending values, built only on failure);
    - Dask arrays: nothing is computed; the check joins the graph of the
      call's results (see :func:`deferred_checks`), and computing any of
      them raises ``ValueError(message)``;
    - JAX tracers (inside ``jax.jit``): a ``TypeError`` that says how to
      check the data outside ``jit`` and switch the checks off inside it.
    """
    if not value_checks_enabled():
        return
    if _is_traced(ok):
        raise TypeError(message + _JIT_ADVICE)
    if _is_dask(ok):
        pending = _DEFERRED.get()
        if pending is None:
            msg = "a check on Dask arrays must run inside deferred_checks()"
            raise RuntimeError(msg)
        pending.append((ok, message))
        return
    if not bool(ok):
        raise ValueError(message + (detail() if detail is not None else ""))


def _is_traced(x) -> bool:
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(x, jax.core.Tracer)


def _is_dask(x) -> bool:
    return "dask" in sys.modules and array_api_compat.is_dask_array(x)


@contextlib.contextmanager
def deferred_checks():
    """Collect the checks :func:`require` defers on Dask arrays during a call.

    Yields a function ``guard(results)`` that returns ``results`` (an array
    or a tuple of arrays and ``None``) with every Dask array made to depend
    on the deferred checks: computing it runs them first and raises the
    library's ``ValueError`` for the first that fails. Every public entry
    point runs inside this context, so no check computes anything at call
    time.
    """
    pending = []
    token = _DEFERRED.set(pending)
    try:
        yield lambda results: _guard(results, pending)
    finally:
        _DEFERRED.reset(token)


def _guard(results, pending):
    if not pending:
        return results
    if isinstance(results, tuple):
        return tuple(_guard(r, pending) for r in results)
    if not _is_dask(results):
        return results
    import dask.array as da

    oks = [ok for ok, _ in pending]
    messages = tuple(m for _, m in pending)
    return da.map_blocks(_raise_first, results, *oks, messages=messages,
                         dtype=results.dtype, meta=results._meta)


def _raise_first(block, *oks, messages):
    for ok, message in zip(oks, messages):
        if not ok:
            raise ValueError(message + " (checked when the Dask result was computed)")
    return block


@dataclass(frozen=True)
class Arg:
    """One array argument of a loss and its valid domain.

    Parameters
    ----------
    name : str
        Argument name (positional order is the order in ``Loss.args``).
    shape : tuple of str
        Symbolic shape. Each entry names a dimension; equal names must have
        equal sizes across all arguments. One entry may be ``"*"``: any number
        of trailing or middle dimensions, the same for every argument that
        has ``"*"``.
    kind : {"real", "complex", "int", "choice"}
        Real floating, complex floating, integer labels, or a real floating
        array whose values come from ``values``.
    low, high : float or str, optional
        Bounds. For ``kind="int"`` the range is ``[low, high)`` and ``high``
        may name a dimension (labels in ``[0, C)``), plus an integer
        (lengths in ``[0, T]`` are ``high="T+1"``).
    low_open, high_open : bool
        Whether the real bound itself is excluded.
    values : tuple of float
        The allowed values for ``kind="choice"``.
    simplex : bool
        Rows along the last axis are probability vectors (used to draw
        samples; sums are not checked).
    grad : bool
        Whether the loss is differentiated with respect to this argument.
    optional : bool
        Whether the argument may be left out (``None``).
    also : str, optional
        Name of a loss parameter whose value is also allowed (``ignore_index``).
    normal : bool
        With ``low=0``: positive values start at the smallest normal number
        of the dtype (1.2e-38 in float32, 2.2e-308 in float64), for an
        argument the loss divides by, whose subnormal values would make
        the exact gradient overflow.
    doc : str
        One line for the docs.

    A real bound is enforced as the dtype of the data can hold it: rounded
    inwards to the nearest float32 or float64 number (a float32 target
    ``>= 3e-70`` must be ``>= 1.4e-45``, the smallest positive float32),
    see :meth:`bounds`.
    """

    name: str
    shape: tuple = ("*",)
    kind: str = "real"
    low: Any = None
    high: Any = None
    low_open: bool = False
    high_open: bool = False
    values: tuple = ()
    simplex: bool = False
    grad: bool = False
    optional: bool = False
    also: str | None = None
    normal: bool = False
    doc: str = ""

    def bounds(self, bits: int = 64) -> tuple:
        """``(low, low_open, high, high_open)`` for data of ``bits``-bit
        floats (32 or 64): every bound rounded inwards to a number of that
        precision, so that the data's own comparisons are exact and no
        representable value outside the declared domain passes.
        """
        import numpy as np

        ftype = np.dtype(f"float{bits}").type
        low, low_open, high, high_open = self.low, self.low_open, self.high, self.high_open
        if low is not None:
            low, low_open = _round_inwards(ftype, low, low_open, np.inf)
            if self.normal:
                tiny = float(np.finfo(ftype).smallest_normal)
                if low < tiny:
                    low, low_open = tiny, False
        if high is not None:
            high, high_open = _round_inwards(ftype, high, high_open, -np.inf)
        return low, low_open, high, high_open

    def describe(self) -> str:
        """Human-readable domain, e.g. ``real, shape (N, K, K), >= 0``."""
        parts = [self.kind, "shape (" + ", ".join(self.shape) + ")"]
        if self.kind == "choice":
            parts.append("values in {" + ", ".join(f"{v:g}" for v in self.values) + "}")
        elif self.kind == "int":
            parts.append(f"in [{self.low}, {self.high})")
        else:
            parts.extend(_bounds(self))
        if self.simplex:
            parts.append("rows sum to 1")
        if self.optional:
            parts.append("optional")
        return ", ".join(parts)


@dataclass(frozen=True)
class Param:
    """One construction parameter of a loss.

    ``kind`` is one of ``"float"``, ``"int"``, ``"bool"``, ``"choice"``,
    ``"floats"`` (a sequence of ``length`` floats), ``"str"`` or ``"array"``
    (a 1-D vector of finite weights >= 0 such as class weights, kept as a
    float64 NumPy array; a scalar too when ``scalar_ok``).
    """

    default: Any
    kind: str = "float"
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()
    length: int | None = None
    allow_none: bool = False
    scalar_ok: bool = False
    doc: str = ""

    def allowed(self) -> str:
        if self.kind == "choice":
            s = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.kind == "bool":
            s = "a bool"
        elif self.kind == "array":
            s = ("a real number or " if self.scalar_ok else "") + (
                "a 1-D array-like of finite floats >= 0")
        elif self.kind == "str":
            s = "a string"
        else:
            noun = {"float": "a real number", "int": "an integer"}.get(
                self.kind, f"a sequence of {self.length} real numbers"
            )
            bounds = _bounds(self)
            s = noun + (" " + " and ".join(bounds) if bounds else "")
            if self.kind == "floats" and bounds:
                s = f"a sequence of {self.length} real numbers, each " + " and ".join(bounds)
        if self.allow_none:
            s += ", or None"
        return s

    def _in_bounds(self, v) -> bool:
        if not math.isfinite(v):
            return False
        if self.low is not None and (v <= self.low if self.low_open else v < self.low):
            return False
        return not (
            self.high is not None and (v >= self.high if self.high_open else v > self.high)
        )

    def _host_vector(self, value, fail):
        """A weight vector as a float64 NumPy array, checked once at build time.

        CuPy arrays come to the host with ``.get()``, other namespaces through
        DLPack; losses put it back on the data's device when they use it.
        """
        import numpy as np

        try:
            if hasattr(value, "__dlpack__") and not isinstance(value, np.ndarray):
                value = value.get() if hasattr(value, "get") else np.from_dlpack(value)
            w = np.asarray(value)
            is_bool = w.dtype == np.bool_
            w = w.astype(np.float64)
        except (TypeError, ValueError, RuntimeError, BufferError):
            fail()
        if is_bool:  # it would pass as 0 and 1
            fail(TypeError)
        if w.ndim > 1 or (w.ndim == 0 and not self.scalar_ok) or w.size == 0:
            fail()
        if not (np.all(np.isfinite(w)) and np.all(w >= 0)):
            fail()
        return w

    def validate(self, owner: str, name: str, value):
        """Return the normalised value or raise ``ValueError``/``TypeError``."""
        def fail(exc=ValueError):
            msg = f"{owner}: parameter {name!r} must be {self.allowed()}, got {value!r}"
            raise exc(msg)

        if value is None:
            if self.allow_none:
                return None
            fail()
        k = self.kind
        if k == "bool":
            if not isinstance(value, bool):
                fail(TypeError)
            return value
        if k == "choice":
            # True == 1 in Python: a bool is only one of bool choices.
            if isinstance(value, bool) != any(isinstance(c, bool) for c in self.choices):
                fail(TypeError)
            for c in self.choices:
                try:
                    if c == value:
                        return c
                except (TypeError, ValueError):  # an array compares elementwise
                    break
            fail()
        if k == "str":
            if not isinstance(value, str):
                fail(TypeError)
            return value
        if k == "array":
            return self._host_vector(value, fail)
        if k == "int":
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                fail(TypeError)
            if not self._in_bounds(int(value)):
                fail()
            return int(value)
        if k == "float":
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                fail(TypeError)
            if not self._in_bounds(float(value)):
                fail()
            return float(value)
        if k == "floats":
            if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
                fail(TypeError)
            if len(value) != self.length:
                fail()
            out = []
            for v in value:
                if isinstance(v, bool) or not isinstance(v, numbers.Real):
                    fail(TypeError)
                if not self._in_bounds(float(v)):
                    fail()
                out.append(float(v))
            return tuple(out)
        msg = f"unknown parameter kind {k!r}"
        raise AssertionError(msg)


def int_bound(bound, sizes) -> int:
    """An integer argument's bound: a number, a dimension name (``"C"``) or
    a name plus an integer (``"T+1"``), resolved with the dimension ``sizes``."""
    if not isinstance(bound, str):
        return bound
    dim, _, plus = bound.partition("+")
    return sizes[dim] + int(plus or 0)


def _bounds(spec) -> list:
    """``[">= 0", "< 1"]``-style texts of an ``Arg``'s or a ``Param``'s bounds."""
    parts = []
    if spec.low is not None:
        parts.append(("> " if spec.low_open else ">= ") + f"{spec.low:g}")
    if getattr(spec, "normal", False):
        parts.append("normal (>= 1.2e-38 in float32, >= 2.2e-308 in float64)")
    if spec.high is not None:
        parts.append(("< " if spec.high_open else "<= ") + f"{spec.high:g}")
    return parts


def _round_inwards(ftype, bound, is_open, inwards):
    """``(bound, is_open)`` of a real bound as numbers of type ``ftype`` hold it.

    ``inwards`` is +inf for a lower bound, -inf for an upper one. A bound the
    type holds exactly keeps its openness; one it rounds outwards moves one
    step inwards and becomes closed, as does one it rounds inwards (nothing
    representable lies between the two).
    """
    import numpy as np

    with np.errstate(over="ignore"):
        c = ftype(bound)
    # Compared as Python floats: NumPy would round ``bound`` to ``ftype`` first.
    if float(c) == bound:
        return float(c), is_open
    if (float(c) < bound) == (inwards > 0):
        c = np.nextafter(c, ftype(inwards))
    return float(c), False


REDUCTION = Param(
    "mean",
    kind="choice",
    choices=("mean", "sum", "none"),
    doc='"mean", "sum", or "none" (per-sample values; grad is then that of their sum)',
)


def check_arrays(owner: str, args, arrays: dict, dims_min: dict, params: dict, values=True):
    """Check presence, namespace, dtypes, shapes and (when enabled and
    ``values``) values of the arrays bound to ``args``.

    Returns ``(xp, sizes)``: the arrays' namespace and the size of every
    named dimension.
    """
    missing = [a.name for a in args if arrays.get(a.name) is None and not a.optional]
    if missing:
        names = ", ".join(repr(a.name) + ("" if not a.optional else " (optional)") for a in args)
        msg = (f"{owner}: missing required array argument(s) {', '.join(map(repr, missing))}; "
               f"it takes {names}")
        raise TypeError(msg)
    xp = namespace(arrays, owner)
    float_dtypes = {}
    sizes: dict = {}
    seen: dict = {}  # dimension name (or "*") -> the argument that fixed its size
    star = None
    for a in args:
        x = arrays.get(a.name)
        if x is None:
            continue
        _check_dtype(owner, a, x, xp)
        if a.kind in ("real", "choice", "complex"):
            float_dtypes[a.name] = x.dtype
        star = _match_shape(owner, a, tuple(x.shape), sizes, star, seen)
    if len({_precision(xp, d) for d in float_dtypes.values()}) > 1:
        got = ", ".join(f"{n!r}: {d}" for n, d in float_dtypes.items())
        msg = f"{owner}: floating arguments must share one precision, got {got}"
        raise TypeError(msg)
    for dim, n in sizes.items():
        need = dims_min.get(dim, 1)
        if n < need:
            who = [repr(a.name) for a in args if dim in a.shape
                   and arrays.get(a.name) is not None]
            msg = (f"{owner}: dimension {dim} of argument(s) {', '.join(who)} must have "
                   f"size >= {need}, got {n}")
            raise ValueError(msg)
    if star is not None and any(s == 0 for s in star):
        who = ", ".join(repr(a.name) for a in args if "*" in a.shape
                        and arrays.get(a.name) is not None)
        msg = (f"{owner}: argument(s) {who} must not be empty, got {star} for their "
               "'*' dimensions")
        raise ValueError(msg)
    if values and value_checks_enabled():
        for a in args:
            x = arrays.get(a.name)
            if x is not None:
                _check_range(owner, a, x, sizes, params, xp)
    return xp, sizes


def _precision(xp, dtype):
    if dtype in (xp.float32, xp.complex64):
        return 32
    return 64


def _check_dtype(owner, a, x, xp):
    # float16 and bfloat16 are refused: the losses' stable forms and bounds
    # (exp limits, eps, tiny positives) are designed for float32 and float64.
    if a.kind == "int":
        ok, want = xp.isdtype(x.dtype, "integral"), "an integer dtype"
    elif a.kind == "complex":
        ok, want = x.dtype in (xp.complex64, xp.complex128), "dtype complex64 or complex128"
    else:
        ok, want = x.dtype in (xp.float32, xp.float64), "dtype float32 or float64"
    if not ok:
        msg = f"{owner}: argument {a.name!r} must have {want}, got {x.dtype}"
        raise TypeError(msg)


def _match_shape(owner, a, shape, sizes, star, seen):
    spec = a.shape
    def fail(extra=""):
        want = "(" + ", ".join(spec) + ")"
        msg = f"{owner}: argument {a.name!r} must have shape {want}, got {shape}{extra}"
        raise ValueError(msg)

    if "*" in spec:
        i = spec.index("*")
        head, tail = spec[:i], spec[i + 1 :]
        if len(shape) < len(head) + len(tail):
            fail()
        mid = shape[len(head) : len(shape) - len(tail)]
        if star is not None and mid != star:
            fail(f"; its '*' dimensions {mid} differ from {star}, those of {seen['*']!r}")
        star = mid
        seen.setdefault("*", a.name)
        named = list(zip(head, shape[: len(head)])) + list(
            zip(tail, shape[len(shape) - len(tail) :])
        )
    else:
        if len(shape) != len(spec):
            fail()
        named = list(zip(spec, shape))
    for dim, n in named:
        if dim in sizes and sizes[dim] != n:
            fail(f"; dimension {dim} is {sizes[dim]} in {seen[dim]!r} but {n} here")
        sizes[dim] = n
        seen.setdefault(dim, a.name)
    return star


def _check_range(owner, a, x, sizes, params, xp):
    """One :func:`require` per argument: a reduction decides, and the
    elementwise mask of offending values is built only to describe a failure."""
    if a.kind == "int":
        high = int_bound(a.high, sizes)

        def bad_of():
            bad = (x < a.low) | (x >= high)
            if a.also is not None and params.get(a.also) is not None:
                bad = bad & (x != params[a.also])
            return bad

        extra = f" or equal {a.also}={params[a.also]}" if a.also else ""
        rule = f"must hold values in [{a.low}, {high}){extra}"
        ok = ~xp.any(bad_of())
    elif a.kind == "choice":
        def bad_of():
            bad = xp.ones(x.shape, dtype=xp.bool, device=device_of(x))
            for v in a.values:
                bad = bad & (x != v)
            return bad

        rule = f"must hold values in {set(a.values)}"
        ok = ~xp.any(bad_of())
    elif a.kind == "complex":
        def bad_of():
            return ~xp.isfinite(x)

        rule = "must be finite"
        ok = xp.all(xp.isfinite(x))
    else:
        bits = xp.finfo(x.dtype).bits
        low, low_open, high, high_open = a.bounds(bits)
        # NaN propagates through min and max, so it fails isfinite.
        smallest, largest = xp.min(x), xp.max(x)
        ok = xp.isfinite(smallest) & xp.isfinite(largest)
        if low is not None:
            ok = ok & ((smallest > low) if low_open else (smallest >= low))
        if high is not None:
            ok = ok & ((largest < high) if high_open else (largest <= high))

        def bad_of():
            bad = ~xp.isfinite(x)
            if low is not None:
                bad = bad | (~(x > low) if low_open else ~(x >= low))
            if high is not None:
                bad = bad | (~(x < high) if high_open else ~(x <= high))
            return bad

        rule = f"must be finite{_bounds_text(a)}"
        if (low, low_open, high, high_open) != (a.low, a.low_open, a.high, a.high_open):
            held = [f"{op} {v:.8g}" for op, v in ((">" if low_open else ">=", low),
                                                   ("<" if high_open else "<=", high))
                    if v is not None]
            rule += f" (in float{bits}: {' and '.join(held)})"
    require(xp, ok, f"{owner}: argument {a.name!r} {rule}", lambda: _found(xp, x, bad_of()))


def _bounds_text(a) -> str:
    parts = _bounds(a)
    return (" and " + " and ".join(parts)) if parts else ""


def _found(xp, x, bad) -> str:
    n = int(xp.sum(xp.astype(bad, xp.int64)))
    first = x[bad][0]
    first = int(first) if xp.isdtype(x.dtype, "integral") else complex(first) if xp.isdtype(x.dtype, "complex floating") else float(first)
    return f"; {n} element(s) are not, e.g. {first!r}"
