"""The contract of DESIGN.md section 2, checked for every registered loss.

Nothing here names a loss: a new registered class is picked up with all the
parameter sets in its ``param_cases``. Inputs at the edges of the domains
are tested in test_robustness.py, bad input in test_bad_input.py.
"""

import numpy as np
import pytest

import ptyloss_xp as pl
from ptyloss_xp.testing import check_grad, dtype_tolerance, sample_inputs

from conftest import to_numpy

CASES = [
    pytest.param(name, case, id=f"{name}-{i}")
    for name in pl.available()
    for i, case in enumerate(({},) + pl.loss_class(name).param_cases)
]


def _grads_tuple(loss, g):
    return (g,) if len(loss.wrt) == 1 else g


@pytest.mark.parametrize(("name", "case"), CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_matches_finite_differences(name, case, seed):
    loss = pl.get(name, **case)
    arrays = sample_inputs(loss, seed=seed)
    check_grad(loss, **arrays, rtol=1e-7)


@pytest.mark.parametrize(("name", "case"), CASES)
def test_gradient_hessian_matches_finite_differences_of_gradient(name, case):
    loss = pl.get(name, **case)
    if not hasattr(loss, "gradient_hessian"):
        pytest.skip("this loss offers no diagonal Hessian")
    arrays = sample_inputs(loss, seed=3)
    (wrt,) = loss.wrt
    x = arrays[wrt]
    spec = {a.name: a for a in loss.args}[wrt]
    room = np.full(x.shape, np.inf)
    if spec.low is not None:
        room = np.minimum(room, x - spec.low)
    if spec.high is not None:
        room = np.minimum(room, spec.high - x)
    kink = loss.nonsmooth_distance(wrt, arrays)
    if kink is not None:
        room = np.minimum(room, kink)
    h = 1e-3 * np.minimum(np.maximum(1.0, np.abs(x)), room / 2.5)
    g, hess = loss.gradient_hessian(**arrays)
    np.testing.assert_allclose(g, loss.grad(**arrays), rtol=1e-12, atol=0)
    fd = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        def g_at(c, idx=idx):
            shifted = x.copy()
            shifted[idx] += c * h[idx]
            return loss.grad(**{**arrays, wrt: shifted})[idx]

        fd[idx] = (-g_at(2) + 8 * g_at(1) - 8 * g_at(-1) + g_at(-2)) / (12 * h[idx])
    # A difference of gradients cannot resolve less than its rounding floor,
    # about eps * |g| / h (a zero or tiny Hessian beside an O(1) gradient).
    floor = 64 * np.finfo(float).eps * np.abs(g) / h
    assert np.all(np.abs(fd - hess) <= 1e-6 * max(np.max(np.abs(hess)), 1e-300) + floor)


@pytest.mark.parametrize(("name", "case"), CASES)
def test_value_and_grad_equals_value_and_grad_separately(name, case):
    loss = pl.get(name, **case)
    arrays = sample_inputs(loss, seed=2)
    v, g = loss.value_and_grad(**arrays)
    np.testing.assert_array_equal(v, loss.value(**arrays))
    for a, b in zip(_grads_tuple(loss, g), _grads_tuple(loss, loss.grad(**arrays))):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("name", "case"), CASES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_namespace_gives_numpys_numbers_dtypes_and_shapes(xp, name, case, dtype):
    """On every backend: the result's namespace, dtype and shape, inputs left
    unchanged, and NumPy's numbers (1e-12 relative in float64; float32's
    rounding of differently ordered sums in float32)."""
    loss = pl.get(name, **case)
    arrays = sample_inputs(loss, xp=xp, dtype=dtype, seed=4)
    before = {k: to_numpy(v).copy() for k, v in arrays.items()}
    v, g = loss.value_and_grad(**arrays)
    for k, arr in arrays.items():
        np.testing.assert_array_equal(to_numpy(arr), before[k], err_msg=f"{k} was modified")
    real = xp.float32 if dtype == "float32" else xp.float64
    assert type(v) is type(arrays[loss.wrt[0]])
    assert v.dtype == real
    v0, g0 = loss.value_and_grad(**sample_inputs(loss, dtype=dtype, seed=4))
    rtol = 1e-12 if dtype == "float64" else dtype_tolerance("float32")
    np.testing.assert_allclose(to_numpy(v), v0, rtol=rtol, atol=rtol * np.max(np.abs(v0)))
    for name_, gi, ref in zip(loss.wrt, _grads_tuple(loss, g), _grads_tuple(loss, g0)):
        x = arrays[name_]
        assert type(gi) is type(x), name_
        assert gi.dtype == x.dtype, name_
        assert gi.shape == x.shape, name_
        gi = to_numpy(gi)
        assert np.all(np.isfinite(gi)), name_
        tol = 1e-10 if dtype == "float64" else dtype_tolerance("float32")
        np.testing.assert_allclose(gi, ref, rtol=tol, atol=tol * np.max(np.abs(ref)),
                                   err_msg=name_)


@pytest.mark.parametrize(("name", "case"), CASES)
def test_float32_agrees_with_float64(name, case):
    loss = pl.get(name, **case)
    a64 = sample_inputs(loss, dtype="float64", seed=5)
    a32 = sample_inputs(loss, dtype="float32", seed=5)
    v64, g64 = loss.value_and_grad(**a64)
    v32, g32 = loss.value_and_grad(**a32)
    tol = 4 * dtype_tolerance("float32")
    scale = max(np.max(np.abs(v64)), 1e-30)
    assert np.max(np.abs(v32 - v64)) <= tol * scale
    for a, b in zip(_grads_tuple(loss, g32), _grads_tuple(loss, g64)):
        assert np.max(np.abs(a - b)) <= tol * max(np.max(np.abs(b)), 1e-30)


@pytest.mark.parametrize("name", pl.available())
def test_unknown_parameter_is_named(name):
    with pytest.raises(TypeError, match="not_a_parameter"):
        pl.get(name, not_a_parameter=1)


@pytest.mark.parametrize("name", pl.available())
def test_every_loss_is_documented(name):
    cls = pl.loss_class(name)
    assert cls.family, name
    assert cls.formula and cls.gradient and cls.reference, name
    assert cls.__doc__ and "Examples" in cls.__doc__, name
    for a in cls.args:
        assert a.doc or a.name in ("input", "target"), (name, a.name)


def test_unknown_name_lists_valid_names():
    with pytest.raises(KeyError, match="loss_single"):
        pl.get("no_such_loss")


def test_mixed_namespaces_are_a_clear_error():
    strict = pytest.importorskip("array_api_strict")
    loss = pl.get("loss_single")
    with pytest.raises(TypeError, match="model_dp.*measured_dp"):
        loss.value(np.ones((1, 2, 2)), strict.ones((1, 2, 2)))
