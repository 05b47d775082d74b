"""Bad input to every registered loss is a clear error: the right exception
type, and a message that starts with the loss's name and names the argument
or parameter at fault.

The table is generated from each loss's declared ``Arg`` and ``Param``
records, so nothing here names a loss: missing and extra arrays, arrays of
the wrong type, dtype or shape, empty batches and too small dimensions,
values out of the declared domain (in float32 and float64, each with the
bounds as that dtype holds them), and bad parameters.
"""

import math

import numpy as np
import pytest

import ptyloss_xp as pl
from ptyloss_xp.testing import sample_inputs

CASES = [
    pytest.param(name, case, id=f"{name}-{i}")
    for name in pl.available()
    for i, case in enumerate(({},) + pl.loss_class(name).param_cases)
]


class Bad:
    """One bad call: what it does, the exception it must raise, the names
    its message must contain."""

    def __init__(self, what, call, exc, names):
        self.what, self.call, self.exc, self.names = what, call, exc, tuple(names)


def _call(loss, *args, **kw):
    return lambda: loss.value_and_grad(*args, **kw)


def _star_ndim(loss, arrays):
    for a in loss.args:
        if "*" in a.shape and arrays.get(a.name) is not None:
            return arrays[a.name].ndim - (len(a.shape) - 1)
    return 0


def _axes(arg, dim, star_ndim):
    """Axes of ``arg``'s array that dimension ``dim`` ("*": all of them) spans."""
    out, pos = [], 0
    for d in arg.shape:
        width = star_ndim if d == "*" else 1
        if d == dim:
            out.extend(range(pos, pos + width))
        pos += width
    return out


def _resize(loss, arrays, dim, size):
    """The arrays with dimension ``dim`` cut to ``size`` in every argument."""
    star = _star_ndim(loss, arrays)
    out = dict(arrays)
    for a in loss.args:
        if arrays.get(a.name) is None:
            continue
        x = arrays[a.name]
        for ax in _axes(a, dim, star):
            x = np.take(x, np.arange(min(size, x.shape[ax])), axis=ax)
        out[a.name] = x
    return out


def _present(loss, arrays):
    return [a for a in loss.args if arrays.get(a.name) is not None]


def _arity(loss, arrays):
    required = [a.name for a in loss.args if not a.optional]
    yield Bad("no arrays", _call(loss), TypeError, required)
    for a in loss.args:
        if a.optional:
            continue
        rest = {k: v for k, v in arrays.items() if k != a.name}
        yield Bad(f"{a.name} missing", _call(loss, **rest), TypeError, [a.name])
    positional = [arrays.get(a.name) for a in loss.args]
    yield Bad("one array too many", _call(loss, *positional, positional[0]), TypeError,
              [a.name for a in loss.args])
    yield Bad("unknown keyword array", _call(loss, **arrays, bogus=positional[0]), TypeError,
              ["bogus"])
    first = loss.args[0].name
    yield Bad("array given twice", _call(loss, positional[0], **arrays), TypeError, [first])


def _types(loss, arrays):
    for a in _present(loss, arrays):
        x = arrays[a.name]
        wrong = {"list": x.tolist()}
        if a.kind == "int":
            wrong.update(float64=x.astype(np.float64), bool=x > 0)
        else:
            real = x.real if a.kind == "complex" else x
            wrong.update(float16=real.astype(np.float16), int64=np.ones(x.shape, np.int64),
                         bool=np.ones(x.shape, bool))
            if a.kind == "complex":
                wrong["float64"] = real.astype(np.float64)
            else:
                wrong["complex128"] = x.astype(np.complex128)
        for label, bad in wrong.items():
            yield Bad(f"{a.name} as {label}", _call(loss, **{**arrays, a.name: bad}),
                      TypeError, [a.name])
    floats = [a for a in _present(loss, arrays) if a.kind != "int"]
    if len(floats) > 1:
        a = floats[-1]
        single = np.complex64 if a.kind == "complex" else np.float32
        yield Bad(f"{a.name} float32 among float64",
                  _call(loss, **{**arrays, a.name: arrays[a.name].astype(single)}), TypeError,
                  [a.name])


def _shapes(loss, arrays):
    present = _present(loss, arrays)
    star = _star_ndim(loss, arrays)
    for a in present:
        x = arrays[a.name]
        if "*" not in a.shape:
            yield Bad(f"{a.name} with an extra axis",
                      _call(loss, **{**arrays, a.name: x[None]}), ValueError, [a.name])
        if any(d != "*" for d in a.shape) and x.ndim:
            yield Bad(f"{a.name} 0-d", _call(loss, **{**arrays, a.name: x.reshape(-1)[0]}),
                      ValueError, [a.name])
        for dim in dict.fromkeys(a.shape):
            if sum(dim in b.shape for b in present) < 2:
                continue
            # One more entry along dim in this argument only: sizes disagree.
            grown = x
            for ax in _axes(a, dim, star):
                grown = np.concatenate([grown, np.take(grown, [0], axis=ax)], axis=ax)
            if grown.shape != x.shape:
                yield Bad(f"{a.name} longer along {dim}",
                          _call(loss, **{**arrays, a.name: grown}), ValueError, [a.name])


def _sizes(loss, arrays):
    present = _present(loss, arrays)
    dims = dict.fromkeys(d for a in present for d in a.shape)
    for dim in dims:
        need = 1 if dim == "*" else loss.dims_min.get(dim, 1)
        if dim == "*" and _star_ndim(loss, arrays) == 0:
            continue
        cut = _resize(loss, arrays, dim, need - 1)
        who = [a.name for a in present if dim in a.shape]
        yield Bad(f"{dim} of size {need - 1}", _call(loss, **cut), ValueError, who[:1])


def _values(loss, arrays, dtype):
    bits = 32 if dtype == "float32" else 64
    ftype = np.dtype(dtype).type
    host = {k: (v.astype(ftype) if np.issubdtype(v.dtype, np.floating) else
                v.astype(np.complex64 if bits == 32 else np.complex128)
                if np.iscomplexobj(v) else v) for k, v in arrays.items()}
    for a in _present(loss, host):
        x = host[a.name]
        if a.kind == "int":
            high = _int_high(loss, host, a.high)
            also = loss.config.get(a.also) if a.also else None
            low = a.low - 1 if a.low - 1 != also else a.low - 2
            bad_values = [low] + ([high] if high != also else [high + 1])
        elif a.kind == "choice":
            bad_values = [max(a.values) + 0.5]
        elif a.kind == "complex":
            bad_values = [complex(np.nan, 0.0), complex(0.0, np.inf)]
        else:
            low, low_open, high, high_open = a.bounds(bits)
            bad_values = [np.nan, np.inf, -np.inf]
            if low is not None:
                bad_values.append(low if low_open else np.nextafter(ftype(low), ftype(-np.inf)))
            if high is not None:
                bad_values.append(high if high_open else np.nextafter(ftype(high), ftype(np.inf)))
        for v in bad_values:
            bad = x.copy()
            bad.reshape(-1)[0] = v
            yield Bad(f"{a.name} holding {v!r} ({dtype})", _call(loss, **{**host, a.name: bad}),
                      ValueError, [a.name])


def _int_high(loss, arrays, high):
    """An integer argument's exclusive upper bound: a number, a dimension
    name ("C") or a name plus an integer ("T+1")."""
    if not isinstance(high, str):
        return high
    dim, _, plus = high.partition("+")
    return _dim_size(loss, arrays, dim) + int(plus or 0)


def _dim_size(loss, arrays, dim):
    star = _star_ndim(loss, arrays)
    for a in _present(loss, arrays):
        axes = _axes(a, dim, star)
        if axes:
            return arrays[a.name].shape[axes[0]]
    raise AssertionError(dim)


def _bad_parameters(spec):
    """``(value, exception)`` pairs outside a :class:`Param`'s declared domain."""
    k = spec.kind
    out = [] if spec.allow_none else [(None, ValueError)]
    if k in ("float", "int"):
        # NaN and inf are floats: no integer (TypeError), no real in range.
        nonfinite = TypeError if k == "int" else ValueError
        out += [("1", TypeError), (True, TypeError), (math.nan, nonfinite),
                (math.inf, nonfinite)]
        if k == "int":
            out.append((1.5, TypeError))
        if spec.low is not None:
            below = spec.low if spec.low_open else spec.low - 1
            out.append((int(math.floor(below)) if k == "int" else below, ValueError))
        if spec.high is not None:
            above = spec.high if spec.high_open else spec.high + 1
            out.append((int(math.ceil(above)) if k == "int" else above, ValueError))
    elif k == "floats":
        out += [("ab", TypeError), ((1.0,) * (spec.length + 1), ValueError),
                ((math.nan,) * spec.length, ValueError), ((True,) * spec.length, TypeError)]
        if spec.low is not None:
            out.append(((spec.low if spec.low_open else spec.low - 1,) * spec.length,
                        ValueError))
    elif k == "bool":
        out += [(1, TypeError), ("yes", TypeError)]
    elif k == "choice":
        out += [("no such choice", ValueError), (object(), ValueError),
                (np.array([1, 2]), ValueError)]
        if not any(isinstance(c, bool) for c in spec.choices):
            out.append((True, TypeError))
    elif k == "str":
        out += [(1, TypeError)]
    elif k == "array":
        out += [([-1.0], ValueError), ([[1.0]], ValueError), ([], ValueError),
                ([math.nan], ValueError), (["a"], ValueError), ([True], TypeError)]
    return out


def _parameters(loss):
    cls = type(loss)
    for pname, spec in cls.params.items():
        for value, exc in _bad_parameters(spec):
            params = {**loss.config, pname: value}
            yield Bad(f"parameter {pname}={value!r}", lambda params=params: cls(**params),
                      exc, [pname])


def bad_calls(loss, seed=0):
    """Every bad call generated for ``loss`` (a built loss)."""
    arrays = sample_inputs(loss, seed=seed)
    yield from _arity(loss, arrays)
    yield from _types(loss, arrays)
    yield from _shapes(loss, arrays)
    yield from _sizes(loss, arrays)
    for dtype in ("float32", "float64"):
        yield from _values(loss, arrays, dtype)
    yield from _parameters(loss)


def check(loss, bad):
    """None if ``bad`` raises its exception with a clear message, else why not."""
    try:
        result = bad.call()
    except Exception as exc:  # noqa: BLE001 - any other exception is the finding
        msg = str(exc)
        if type(exc) is not bad.exc and not isinstance(exc, bad.exc):
            return f"{bad.what}: {type(exc).__name__} instead of {bad.exc.__name__}: {msg}"
        if not msg.startswith(f"{loss.name}:"):
            return f"{bad.what}: message does not start with {loss.name!r}: {msg}"
        missing = [n for n in bad.names if repr(n) not in msg and n not in msg.split()]
        if missing:
            return f"{bad.what}: message does not name {missing}: {msg}"
        return None
    return f"{bad.what}: accepted, returned {result!r}"


@pytest.mark.parametrize(("name", "case"), CASES)
def test_bad_input_is_a_clear_error_naming_the_argument(name, case):
    loss = pl.get(name, **case)
    with np.errstate(all="ignore"):
        problems = [p for p in (check(loss, b) for b in bad_calls(loss)) if p is not None]
    assert not problems, "\n".join(problems)
