"""Lazy and traced backends: Dask computes nothing inside a call, JAX's jit
gets a clear rule for the value checks, and bad input gets the library's own
error on every backend.

Every registered loss is picked up; nothing here names one, except the
bad-input examples of the last tests.
"""

import dask
import numpy as np
import pytest

import ptyloss_xp as pl
from ptyloss_xp.testing import sample_inputs

from conftest import BACKENDS, backend_params, to_numpy

CASES = [
    pytest.param(name, case, id=f"{name}-{i}")
    for name in pl.available()
    for i, case in enumerate(({},) + pl.loss_class(name).param_cases)
]
DEFAULTS = [pytest.param(name, id=name) for name in pl.available()]


class ComputeCounter:
    """A Dask scheduler that counts how often a graph is computed."""

    def __init__(self):
        self.computes = 0

    def __call__(self, dsk, keys, **kw):
        self.computes += 1
        return dask.get(dsk, keys, **kw)


def _chunked(arrays):
    """Dask arrays cut into two chunks along every axis of size > 1."""
    da = pytest.importorskip("dask.array")
    return {k: da.from_array(v, chunks=tuple(max(1, (s + 1) // 2) for s in v.shape))
            for k, v in arrays.items()}


def _as_tuple(loss, g):
    return (g,) if len(loss.wrt) == 1 else g


@pytest.mark.parametrize(("name", "case"), CASES)
def test_dask_call_computes_nothing_and_gives_numpys_numbers(name, case):
    loss = pl.get(name, **case)
    ref = sample_inputs(loss, seed=7)
    counter = ComputeCounter()
    with dask.config.set(scheduler=counter):
        v, g = loss.value_and_grad(**_chunked(ref))
        value_only = loss.value(**_chunked(ref))
    assert counter.computes == 0
    v0, g0 = loss.value_and_grad(**ref)
    np.testing.assert_allclose(to_numpy(v), v0, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(to_numpy(value_only), v0, rtol=1e-12, atol=1e-300)
    for a, b in zip(_as_tuple(loss, g), _as_tuple(loss, g0)):
        assert a.chunks is not None
        np.testing.assert_allclose(to_numpy(a), b, rtol=1e-10, atol=1e-13 * np.max(np.abs(b)))


@pytest.mark.skipif(BACKENDS["jax"] is None, reason="jax not available")
@pytest.mark.parametrize("name", DEFAULTS)
def test_jit_refuses_value_checks_clearly_and_runs_without_them(name):
    import jax

    xp = BACKENDS["jax"]
    loss = pl.get(name)
    ref = sample_inputs(loss, seed=8)
    arrays = {k: xp.asarray(v) for k, v in ref.items()}
    with pytest.raises(TypeError, match=rf"^{name}: argument .* jax\.jit .*check_values\(False\)"):
        jax.jit(lambda a: loss.value_and_grad(**a))(arrays)
    with pl.check_values(False):
        v, g = jax.jit(lambda a: loss.value_and_grad(**a))(arrays)
    v0, g0 = loss.value_and_grad(**ref)
    np.testing.assert_allclose(np.asarray(v), v0, rtol=1e-12, atol=1e-300)
    for a, b in zip(_as_tuple(loss, g), _as_tuple(loss, g0)):
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-10, atol=1e-13 * np.max(np.abs(b)))


def _on(xp_name, arrays):
    if xp_name == "dask":
        return _chunked(arrays)
    xp = BACKENDS[xp_name]
    return {k: xp.asarray(v) for k, v in arrays.items()}


@pytest.mark.parametrize("backend", backend_params())
def test_bad_values_get_the_librarys_error_on_every_backend(backend):
    """At call time on eager backends; when the result is computed on Dask."""
    rng = np.random.default_rng(0)
    model = rng.uniform(0.5, 2.0, (4, 3, 3))
    measured = model.copy()
    measured[2, 1, 1] = -1.0
    loss = pl.get("loss_single")
    with pytest.raises(ValueError, match="^loss_single: argument 'measured_dp' must be finite and >= 0"):
        v = loss.value(**_on(backend, {"model_dp": model, "measured_dp": measured}))
        to_numpy(v)
    labels = np.array([0, 3, 1])
    ce = pl.get("cross_entropy")
    with pytest.raises(ValueError, match=r"^cross_entropy: argument 'target' must hold values in \[0, 3\)"):
        _, g = ce.value_and_grad(**_on(backend, {"input": rng.normal(size=(3, 3)), "target": labels}))
        to_numpy(g)


@pytest.mark.parametrize("backend", backend_params())
def test_combined_loss_and_bridge_on_every_backend(backend):
    rng = np.random.default_rng(1)
    psi = rng.normal(size=(4, 1, 2, 6, 6)) + 1j * rng.normal(size=(4, 1, 2, 6, 6))
    occ = np.array([0.7, 0.3])
    measured = rng.poisson(3.0, (4, 6, 6)).astype(float)
    phase = rng.normal(size=(4, 2, 1, 5, 5))
    amp = 1 + 0.1 * rng.normal(size=(4, 2, 1, 5, 5))
    combo = pl.CombinedLoss({
        "loss_single": {"state": True, "dp_pow": 0.5},
        "loss_poissn": {"state": True},
        "loss_pacbed": {"state": True},
        "loss_sparse": {"state": True},
        "loss_simlar": {"state": True, "scale_factor": [1, 0.6, 0.6]},
    })

    def run(a):
        model, far = pl.farfield_intensity(a["psi"], a["occ"])
        res = combo.value_and_grad(model_dp=model, measured_dp=a["measured"],
                                   obja_patches=a["amp"], objp_patches=a["phase"],
                                   omode_occu=a["occ"])
        g_psi = pl.farfield_adjoint(res.grads["model_dp"], far, a["occ"])
        return res, g_psi

    host = {"psi": psi, "occ": occ, "measured": measured, "phase": phase, "amp": amp}
    res0, g0 = run(host)
    res, g = run(_on(backend, host))
    np.testing.assert_allclose(to_numpy(res.total), res0.total, rtol=1e-12)
    for k, ref in res0.grads.items():
        np.testing.assert_allclose(to_numpy(res.grads[k]), ref, rtol=1e-10,
                                   atol=1e-13 * np.max(np.abs(ref)), err_msg=k)
    np.testing.assert_allclose(to_numpy(g), g0, rtol=1e-10, atol=1e-13 * np.max(np.abs(g0)))
