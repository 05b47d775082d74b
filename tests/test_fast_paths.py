"""The fused (numba) kernels of the PtyRAD terms give the generic path's numbers.

The generic kernel is run on the same NumPy arrays by making the one
dispatch, ``_fast.kernels``, answer ``None``, so both paths read identical
inputs. Arrays stay small: the numba compile is paid once (and cached).
"""

import numpy as np
import pytest

import ptyloss_xp as pl
from ptyloss_xp.ptycho import _fast

pytest.importorskip("numba")

CASES = [
    pytest.param(name, p, id=f"{name}-p{p}")
    for name in ("loss_single", "loss_poissn", "loss_pacbed")
    for p in (1.0, 0.5, 0.2, 2.0)
]
SHAPES = [(19, 16, 16), (3, 33, 40), (1, 5, 7)]


def _inputs(shape, dtype, weighted, seed=0):
    rng = np.random.default_rng(seed)
    model = rng.uniform(0.05, 4.0, shape)
    meas = rng.poisson(2.0, shape).astype(float)
    out = {"model_dp": model.astype(dtype), "measured_dp": meas.astype(dtype)}
    if weighted:
        w = rng.uniform(0.0, 2.0, shape[1:])
        w[0, :] = 0.0  # a masked detector row
        out["dp_weight"] = w.astype(dtype)
    return out


def _generic(monkeypatch, loss, arrays):
    with monkeypatch.context() as m:
        m.setattr(_fast, "kernels", lambda arrays: None)
        return loss.value_and_grad(**arrays)


def _assert_close(fast, ref, dtype):
    tol = 256 * np.finfo(dtype).eps
    np.testing.assert_allclose(fast, ref, rtol=tol, atol=tol * np.max(np.abs(ref)))


@pytest.mark.parametrize(("name", "p"), CASES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "dp_weight"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fast_path_matches_generic(monkeypatch, name, p, shape, weighted, dtype):
    loss = pl.get(name, dp_pow=p, weight=0.7)
    arrays = _inputs(shape, dtype, weighted)
    v, g = loss.value_and_grad(**arrays)
    v_ref, g_ref = _generic(monkeypatch, loss, arrays)
    assert v.dtype == g.dtype == np.dtype(dtype)
    assert g.shape == shape and g.flags.c_contiguous
    _assert_close(v, v_ref, dtype)
    _assert_close(g, g_ref, dtype)
    np.testing.assert_array_equal(loss.value(**arrays), v)


@pytest.mark.parametrize(("name", "p"), CASES)
def test_non_contiguous_inputs(monkeypatch, name, p):
    loss = pl.get(name, dp_pow=p)
    base = _inputs((9, 12, 10), "float64", weighted=True)
    arrays = {k: np.swapaxes(x, -1, -2) for k, x in base.items()}
    v, g = loss.value_and_grad(**arrays)
    v_ref, g_ref = _generic(monkeypatch, loss, arrays)
    _assert_close(v, v_ref, "float64")
    _assert_close(g, g_ref, "float64")


@pytest.mark.parametrize("name", ["loss_single", "loss_pacbed"])
@pytest.mark.parametrize("p", [1.0, 0.5, 0.2])
def test_perfect_fit_gives_zero_value_and_subgradient(name, p):
    d = _inputs((5, 8, 8), "float32", weighted=False)["model_dp"]
    v, g = pl.get(name, dp_pow=p).value_and_grad(d, d.copy())
    assert float(v) == 0.0
    assert not np.any(g)


@pytest.mark.parametrize("name", ["loss_single", "loss_poissn", "loss_pacbed"])
def test_fast_path_keeps_the_error_messages(name):
    arrays = _inputs((4, 6, 6), "float64", weighted=True)
    loss = pl.get(name)
    with pytest.raises(ValueError, match="'measured_dp' must not be all zero where dp_weight > 0"):
        loss.value_and_grad(arrays["model_dp"], np.zeros_like(arrays["model_dp"]),
                            arrays["dp_weight"])
    with pytest.raises(ValueError, match="'dp_weight' must have a positive sum"):
        loss.value(arrays["model_dp"], arrays["measured_dp"], np.zeros((6, 6)))


def test_kernels_run_for_numpy_only(monkeypatch):
    strict = pytest.importorskip("array_api_strict")
    calls = []
    real = _fast.kernels

    def spy(arrays):
        found = real(arrays)
        calls.append(found is not None)
        return found

    monkeypatch.setattr(_fast, "kernels", spy)
    arrays = _inputs((3, 4, 4), "float64", weighted=False)
    for name in ("loss_single", "loss_poissn", "loss_pacbed"):
        pl.get(name).value_and_grad(**{k: strict.asarray(x) for k, x in arrays.items()})
    assert calls and not any(calls)
    calls.clear()
    pl.get("loss_single").value_and_grad(**arrays)
    assert calls and all(calls)
