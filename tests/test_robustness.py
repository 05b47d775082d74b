"""Valid inputs at the edges of every loss's declared domain give finite
values and gradients, in float32 and float64, on NumPy and array-api-strict.

Nothing here names a loss: every registered loss runs with every parameter
set in its ``param_cases``, on inputs that :func:`ptyloss_xp.testing.inputs`
draws from its declared ``Arg`` domains (bounds, zeros, +-80 and +-1e4,
tiny positives, perfect fits, one-element batches, identical rows).
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import ptyloss_xp as pl
from ptyloss_xp.testing import inputs

from conftest import BACKENDS, to_numpy

CASES = [
    pytest.param(name, case, id=f"{name}-{i}")
    for name in pl.available()
    for i, case in enumerate(({},) + pl.loss_class(name).param_cases)
]

SPACES = [BACKENDS[n] for n in ("numpy", "array_api_strict") if BACKENDS[n] is not None]

EDGE_SETTINGS = settings(max_examples=6, deadline=None, database=None,
                         suppress_health_check=[HealthCheck.too_slow,
                                                HealthCheck.data_too_large,
                                                HealthCheck.filter_too_much])


def _outputs(loss, arrays):
    """Every array a call returns: value, gradients, and the diagonal Hessian
    where the loss offers one, by name."""
    v, g = loss.value_and_grad(**arrays)
    out = {"value": v}
    out.update(zip((f"grad {n}" for n in loss.wrt), (g,) if len(loss.wrt) == 1 else g))
    if hasattr(loss, "gradient_hessian"):
        out["gradient_hessian grad"], out["hessian"] = loss.gradient_hessian(**arrays)
    return out


def _refused_by_name(loss, exc):
    """A data-dependent rule beyond the declared bounds (say, every label
    ignored, or a zoom that leaves no pixel) may refuse valid-looking input
    (that passes): by a message that names the loss and one of its
    arguments or parameters, never by an inf or a NaN."""
    msg = str(exc)
    names = [a.name for a in loss.args] + list(loss.params)
    return msg.startswith(f"{loss.name}: ") and any(n in msg for n in names)


def _describe(arrays):
    return {k: to_numpy(v).tolist() for k, v in arrays.items()}


@pytest.mark.parametrize(("name", "case"), CASES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_edges_of_the_domain_give_finite_values_and_gradients(name, case, dtype):
    loss = pl.get(name, **case)

    @EDGE_SETTINGS
    @given(inputs(loss, dtype=dtype))
    def run(host):
        for xp in SPACES:
            arrays = {k: xp.asarray(v) for k, v in host.items()}
            try:
                out = _outputs(loss, arrays)
            except ValueError as exc:
                assert _refused_by_name(loss, exc), exc
                return
            for what, arr in out.items():
                assert arr.dtype == getattr(xp, dtype), (what, arr.dtype)
                assert np.all(np.isfinite(to_numpy(arr))), (
                    f"{loss!r} {dtype} {xp.__name__}: {what} is not finite: "
                    f"{to_numpy(arr).tolist()} for {_describe(arrays)}")
            np.testing.assert_array_equal(to_numpy(out["value"]),
                                          to_numpy(loss.value(**arrays)))

    run()


def _parameter_edges(spec):
    """Values at the edges of a numeric :class:`Param`'s declared bounds: a
    closed bound, the smallest steps inside an open one (float64's smallest
    subnormal and float32's). Unbounded sides are not drawn: some parameters
    are sizes (a zoom of 1e4 is a memory test)."""
    if spec.kind not in ("float", "int", "floats"):
        return []
    step = 1 if spec.kind == "int" else None
    out = []
    for bound, is_open, inwards in ((spec.low, spec.low_open, 1.0),
                                    (spec.high, spec.high_open, -1.0)):
        if bound is None:
            continue
        if step:
            out.append(bound + inwards * step if is_open else bound)
        else:
            if not is_open:
                out.append(bound)
            out += [float(np.nextafter(bound, inwards * np.inf)), bound + inwards * 1e-45]
    if spec.kind == "int":
        out = [int(v) for v in out]
    return [(v,) * spec.length if spec.kind == "floats" else v for v in dict.fromkeys(out)]


PARAMETER_EDGES = [
    pytest.param(name, {pname: v}, id=f"{name}-{pname}={v!r}")
    for name in pl.available()
    for pname, spec in pl.loss_class(name).params.items()
    for v in _parameter_edges(spec)
]


@pytest.mark.parametrize(("name", "params"), PARAMETER_EDGES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_edges_of_the_parameters_give_finite_values_and_gradients(name, params, dtype):
    try:
        loss = pl.get(name, **params)
    except ValueError as exc:
        # A rule beyond the declared bounds (say, smooth_l1's 0 < beta <
        # 2**-126) may refuse the value, by name.
        assert str(exc).startswith(f"{name}: ") and repr(next(iter(params))) in str(exc), exc
        return

    @settings(EDGE_SETTINGS, max_examples=2)
    @given(inputs(loss, dtype=dtype))
    def run(host):
        try:
            out = _outputs(loss, host)
        except ValueError as exc:
            assert _refused_by_name(loss, exc), exc
            return
        for what, arr in out.items():
            assert np.all(np.isfinite(arr)), (
                f"{loss!r} {dtype}: {what} is not finite: {np.asarray(arr).tolist()} "
                f"for {_describe(host)}")

    run()
