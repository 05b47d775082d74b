"""Valid inputs at the edges of every loss's declared domain give finite
values and gradients, in float32 and float64, on NumPy and array-api-strict.

Nothing here names a loss: every registered loss runs with every parameter
set in its ``param_cases``, on inputs that :func:`ptyloss_xp.testing.inputs`
draws from its declared ``Arg`` domains (bounds, zeros, +-80 and +-1e4,
tiny positives, perfect fits, one-element batches, identical rows).
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, reject, settings

import ptyloss_xp as pl
from ptyloss_xp.testing import inputs

from conftest import BACKENDS, to_numpy

CASES = [
    pytest.param(name, case, id=f"{name}-{i}")
    for name in pl.available()
    for i, case in enumerate(({},) + pl.loss_class(name).param_cases)
]

SPACES = [BACKENDS[n] for n in ("numpy", "array_api_strict") if BACKENDS[n] is not None]

EDGE_SETTINGS = settings(max_examples=12, deadline=None, database=None,
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
                # A data-dependent rule beyond the declared bounds (say, every
                # label ignored) may refuse the input, by name, never by NaN.
                assert str(exc).startswith(f"{loss.name}: argument"), exc
                reject()
            for what, arr in out.items():
                assert arr.dtype == getattr(xp, dtype), (what, arr.dtype)
                assert np.all(np.isfinite(to_numpy(arr))), (
                    f"{loss!r} {dtype} {xp.__name__}: {what} is not finite: "
                    f"{to_numpy(arr).tolist()} for {_describe(arrays)}")
            np.testing.assert_array_equal(to_numpy(out["value"]),
                                          to_numpy(loss.value(**arrays)))

    run()
