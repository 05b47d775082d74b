"""The fused (numba) kernels of the PtyRAD terms give the generic path's numbers.

The generic kernel is run on the same NumPy arrays by making the one
dispatch, ``_fast.kernels``, answer ``None``, so both paths read identical
inputs. Arrays stay small: the numba compile is paid once (and cached).
"""

import os
import subprocess
import sys

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


def _params(name):
    cls = pl.loss_class(name)
    return [{}] + [dict(c) for c in cls.param_cases]


def _object_inputs(loss, dtype, seed=1, modes=2):
    rng = np.random.default_rng(seed)
    shape = (3, modes, 2, 7, 9)
    arrays = {"omode_occu": np.array([0.7, 0.3, 0.2, 0.1][:modes], dtype=dtype)}
    for arg in loss.args[:-1]:
        x = rng.normal(size=shape)
        x[0, 0, 0, :3, :3] = 0.25  # a flat patch
        arrays[arg.name] = x.astype(dtype)
    return arrays


# loss_simlar filters O - 1 modes and takes the last one's deviation as minus
# their sum: 3 and 4 modes check that beyond the 2-mode case.
@pytest.mark.parametrize("modes", [2, 3, 4])
@pytest.mark.parametrize("name", ["loss_sparse", "loss_tv", "loss_simlar"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_object_terms_match_generic_on_every_param_case(monkeypatch, name, dtype, modes):
    for params in _params(name):
        loss = pl.get(name, **params)
        arrays = _object_inputs(loss, dtype, modes=modes)
        v, g = loss.value_and_grad(**arrays)
        # The reference is the generic path in float64: in float32 the std
        # over nearly equal modes loses digits in the generic path that the
        # fused one (float64 inside) keeps.
        v_ref, g_ref = _generic(monkeypatch, loss, {k: x.astype(np.float64) for k, x in arrays.items()})
        assert v.dtype == np.dtype(dtype)
        _assert_close(v, v_ref, dtype)
        for gi, ri in zip(g if isinstance(g, tuple) else (g,), g_ref if isinstance(g_ref, tuple) else (g_ref,)):
            assert gi.dtype == np.dtype(dtype)
            _assert_close(gi, ri, dtype)
        np.testing.assert_array_equal(loss.value(**arrays), v)


@pytest.mark.parametrize("name", ["loss_single", "loss_poissn", "loss_pacbed"])
@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "dp_weight"])
def test_data_terms_match_generic_on_every_param_case(monkeypatch, name, weighted):
    for params in _params(name):
        loss = pl.get(name, **params)
        arrays = _inputs((4, 6, 5), "float64", weighted)
        v, g = loss.value_and_grad(**arrays)
        v_ref, g_ref = _generic(monkeypatch, loss, arrays)
        _assert_close(v, v_ref, "float64")
        _assert_close(g, g_ref, "float64")


# ---------------------------------------------------------------- the three phases

def _phase_inputs(loss, dtype):
    if loss.family == "ptycho" and loss.args[0].name == "model_dp":
        return _inputs((7, 6, 5), dtype, weighted=True)
    return _object_inputs(loss, dtype)


def _phases(loss, shards, generic=(), generic_finish=False):
    """Partial sums of every shard (the generic kernels for the shards
    numbered in ``generic``), combined, and every shard's ``finish`` (the
    generic one with ``generic_finish``)."""
    partials = []
    for i, shard in enumerate(shards):
        if i in generic:
            with pytest.MonkeyPatch.context() as m:
                m.setattr(_fast, "kernels", lambda arrays: None)
                partials.append(loss.partial_sums(**shard))
        else:
            partials.append(loss.partial_sums(**shard))
    sums = loss.combine(*partials)
    with pytest.MonkeyPatch.context() as m:
        if generic_finish:
            m.setattr(_fast, "kernels", lambda arrays: None)
        return sums, [loss.finish(sums, **shard) for shard in shards]


class _KernelSpy:
    """``kernels`` that records which fused kernels are called."""

    def __init__(self, real):
        self.real, self.used = real, set()

    def kernels(self, arrays):
        module = self.real(arrays)
        return None if module is None else self._Recorder(module, self.used)

    class _Recorder:
        def __init__(self, module, used):
            self._module, self._used = module, used

        def __getattr__(self, name):
            self._used.add(name)
            return getattr(self._module, name)


def _split(arrays, at):
    n = arrays[next(iter(arrays))].shape[0]
    return [{k: x[lo:hi] if x.ndim > 1 and x.shape[0] == n else x for k, x in arrays.items()}
            for lo, hi in ((0, at), (at, n))]


def _grads(g):
    return g if isinstance(g, tuple) else (g,)


# The fused kernels each phase must call (loss_tv's and loss_simlar's one
# kernel takes the sums, and with a gradient asked for, the gradient).
_PHASE_KERNELS = {
    "loss_single": ({"pointwise_sums"}, {"pointwise_grad"}),
    "loss_poissn": ({"pointwise_sums"}, {"pointwise_grad"}),
    "loss_pacbed": ({"pacbed_sums"}, {"broadcast_into"}),
    "loss_sparse": ({"sparse_sums"}, {"sparse_grad"}),
    "loss_tv": ({"tv_value_grad"}, {"tv_value_grad"}),
    "loss_simlar": ({"simlar_value_grad"}, {"simlar_value_grad"}),
}


@pytest.mark.parametrize("name", list(_PHASE_KERNELS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_phases_give_the_generic_phases_numbers(monkeypatch, name, dtype):
    for params in _params(name):
        loss = pl.get(name, **params)
        arrays = _phase_inputs(loss, dtype)
        shards = _split(arrays, 1)
        spies = [_KernelSpy(_fast.kernels), _KernelSpy(_fast.kernels)]
        with monkeypatch.context() as m:
            m.setattr(_fast, "kernels", spies[0].kernels)
            partials = [loss.partial_sums(**shard) for shard in shards]
            sums = loss.combine(*partials)
            m.setattr(_fast, "kernels", spies[1].kernels)
            parts = [loss.finish(sums, **shard) for shard in shards]
        for spy, expected in zip(spies, _PHASE_KERNELS[name]):
            assert expected <= spy.used, (spy.used, expected)
        # The reference: the generic phases in float64 (see the object terms above).
        with monkeypatch.context() as m:
            m.setattr(_fast, "kernels", lambda arrays: None)
            ref_sums, ref_parts = _phases(loss, _split({k: x.astype(np.float64) for k, x in arrays.items()}, 1))
        assert list(sums) == list(ref_sums)
        for k in sums:
            _assert_close(np.asarray(sums[k], dtype=np.float64), np.asarray(ref_sums[k]), dtype)
        _assert_parts_close(parts, ref_parts, dtype)
        # A rank on the generic kernels (another backend's, or no numba)
        # mixes with fused ones: its sums combine with theirs, and its
        # finish takes their float64 sums, gives what it gives with its own
        # and keeps the data's dtype.
        generic = _phases(loss, shards, generic=(0, 1), generic_finish=True)[1]
        _assert_parts_close(_phases(loss, shards, generic=(1,))[1], parts, dtype)
        _assert_parts_close(_phases(loss, shards, generic_finish=True)[1], generic, dtype)


def _assert_parts_close(parts, refs, dtype):
    """``finish`` results of every shard: the data's dtype, close to ``refs``."""
    for (v, g), (v_r, g_r) in zip(parts, refs):
        assert v.dtype == np.dtype(dtype)
        _assert_close(v, v_r, dtype)
        for gi, ri in zip(_grads(g), _grads(g_r)):
            assert gi.dtype == np.dtype(dtype)
            _assert_close(gi, ri, dtype)


def test_fused_phase_1_refuses_bad_values_by_name():
    arrays = _inputs((4, 5, 4), "float32", weighted=False)
    arrays["measured_dp"][2, 1, 1] = -1.0
    loss = pl.get("loss_single")
    shards = _split(arrays, 2)
    loss.partial_sums(**shards[0])
    with pytest.raises(ValueError, match="loss_single: argument 'measured_dp' must be finite and >= 0.*1 element"):
        loss.partial_sums(**shards[1])


# ---------------------------------------------------------------- value checks in the pass

@pytest.mark.parametrize("name", ["loss_single", "loss_poissn", "loss_pacbed"])
@pytest.mark.parametrize(("which", "bad", "rule"), [
    ("model_dp", np.nan, "must be finite and > 0"),
    ("model_dp", 0.0, "must be finite and > 0"),
    ("measured_dp", -1.0, "must be finite and >= 0"),
    ("measured_dp", np.inf, "must be finite and >= 0"),
])
def test_fused_pass_refuses_bad_values_with_the_generic_message(name, which, bad, rule):
    arrays = _inputs((3, 5, 4), "float32", weighted=False)
    arrays[which][1, 2, 3] = bad
    with pytest.raises(ValueError, match=f"{name}: argument '{which}' {rule}.*1 element"):
        pl.get(name).value_and_grad(**arrays)
    with pl.check_values(False), np.errstate(all="ignore"):
        pl.get(name).value(**arrays)  # no check, no error


@pytest.mark.parametrize("name", ["loss_sparse", "loss_tv", "loss_simlar"])
def test_fused_object_terms_refuse_non_finite(name):
    loss = pl.get(name, **({"obj_type": "phase"} if name == "loss_simlar" else {}))
    arrays = _object_inputs(loss, "float64")
    arrays["objp_patches"][0, 1, 0, 2, 2] = np.nan
    with pytest.raises(ValueError, match=f"{name}: argument 'objp_patches' must be finite"):
        loss.value_and_grad(**arrays)
    arrays = _object_inputs(loss, "float64")
    arrays["omode_occu"][0] = -1.0  # the small argument, checked on its own
    with pytest.raises(ValueError, match="'omode_occu' must be finite and >= 0"):
        loss.value_and_grad(**arrays)


# ---------------------------------------------------------------- out=

@pytest.mark.parametrize("fused", [True, False], ids=["fused", "generic"])
@pytest.mark.parametrize("name", ["loss_single", "loss_poissn", "loss_pacbed", "loss_sparse",
                                  "loss_tv", "loss_simlar"])
def test_out_receives_the_gradient(monkeypatch, name, fused):
    loss = pl.get(name)
    if name.startswith(("loss_single", "loss_poissn", "loss_pacbed")):
        arrays = _inputs((3, 6, 5), "float32", weighted=True)
    else:
        arrays = _object_inputs(loss, "float32")
    if not fused:
        monkeypatch.setattr(_fast, "kernels", lambda arrays: None)
    v, g = loss.value_and_grad(**arrays)
    g = g if isinstance(g, tuple) else (g,)
    outs = tuple(np.full_like(arrays[n], 7.0) for n in loss.wrt)
    out = outs[0] if len(outs) == 1 else outs
    v2, g2 = loss.value_and_grad(**arrays, out=out)
    assert v2 == v
    for got, o, ref in zip(g2 if len(outs) > 1 else (g2,), outs, g):
        assert got is o
        np.testing.assert_array_equal(o, ref)
    g3 = loss.grad(**arrays, out=out)
    assert all(a is b for a, b in zip(g3 if len(outs) > 1 else (g3,), outs))


def test_out_non_contiguous_and_refusals():
    loss = pl.get("loss_single")
    arrays = _inputs((3, 6, 6), "float64", weighted=False)
    ref = loss.grad(**arrays)
    strided = np.zeros((3, 6, 6)).swapaxes(1, 2)
    assert loss.grad(**arrays, out=strided) is strided
    np.testing.assert_array_equal(strided, ref)
    model = arrays["model_dp"]
    before = model.copy()
    with pytest.raises(ValueError, match="loss_single: out for 'model_dp' shares memory"):
        loss.grad(**arrays, out=model)
    np.testing.assert_array_equal(model, before)
    with pytest.raises(ValueError, match="shares memory"):
        loss.grad(**arrays, out=arrays["measured_dp"][:, ::-1])
    with pytest.raises(TypeError, match=r"out for 'model_dp' must be a ndarray of shape \(3, 6, 6\) and dtype float64"):
        loss.grad(**arrays, out=np.empty((3, 6, 6), np.float32))
    tv = pl.get("loss_tv", obj_type="both")
    with pytest.raises(TypeError, match="out must be a tuple"):
        tv.grad(**_object_inputs(tv, "float64"), out=np.empty(1))


def test_combined_out_sums_terms_in_place():
    params = {
        "loss_single": {"state": True, "dp_pow": 0.5},
        "loss_poissn": {"state": True},
        "loss_sparse": {"state": True},
        "loss_tv": {"state": True, "obj_type": "both"},
        "loss_simlar": {"state": True},
    }
    combo = pl.CombinedLoss(params)
    arrays = _inputs((3, 9, 9), "float64", weighted=True)
    obj = _object_inputs(pl.get("loss_simlar"), "float64")
    obj = {k: v[..., :9, :9] if v.ndim == 5 else v for k, v in obj.items()}
    obj = {k: np.resize(v, (3,) + v.shape[1:]) if v.ndim == 5 else v for k, v in obj.items()}
    arrays.update(obj)
    ref = combo.value_and_grad(**arrays)
    out = {n: np.full_like(arrays[n], np.nan) for n in combo.wrt}
    res = combo.value_and_grad(**arrays, out=out)
    assert res.total == ref.total
    for n in combo.wrt:
        assert res.grads[n] is out[n]
        np.testing.assert_allclose(out[n], ref.grads[n], rtol=1e-12, atol=1e-15)
    with pytest.raises(TypeError, match="CombinedLoss: out must have exactly the keys"):
        combo.value_and_grad(**arrays, out={"model_dp": out["model_dp"]})


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(2, 3, 2, 17, 33), (1, 1, 1, 1, 9), (3, 2, 1, 40, 1)],
                         ids=lambda s: "x".join(map(str, s)))
def test_tv_value_alone_writes_no_gradient_and_gives_the_same_number(shape, dtype):
    import tracemalloc

    rng = np.random.default_rng(7)
    x = (3.0 * rng.standard_normal(shape)).astype(dtype)
    occ = rng.uniform(0.2, 1.0, shape[1]).astype(dtype)
    loss = pl.get("loss_tv", eps=1e-3, weight=1.7)
    v, _ = loss.value_and_grad(x, occ)
    loss.value(x, occ)
    tracemalloc.start()
    try:
        np.testing.assert_array_equal(loss.value(x, occ), v)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    if x.nbytes >= 16384:  # a gradient-sized allocation stands out from the call's own
        assert peak < x.nbytes / 2


# ---------------------------------------------------------------- numeric edges (issue 10)

@pytest.mark.parametrize("fused", [True, False], ids=["fused", "generic"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_tv_tiny_eps_on_a_flat_patch_has_zero_gradient(monkeypatch, fused, dtype):
    if not fused:
        monkeypatch.setattr(_fast, "kernels", lambda arrays: None)
    x = np.zeros((1, 1, 1, 4, 4), dtype=dtype)
    x[..., 3, 3] = 1.0
    v, g = pl.get("loss_tv", eps=1e-200 if dtype == "float64" else 1e-30).value_and_grad(
        x, np.ones(1, dtype=dtype))
    assert np.isfinite(v) and np.all(np.isfinite(g))
    assert np.all(g[..., :2, :2] == 0)  # flat, away from the step


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "generic"])
@pytest.mark.parametrize("name", ["loss_single", "loss_poissn"])
@pytest.mark.parametrize("p", [0.01, 0.2, 0.5])
def test_model_at_the_smallest_normal_float32_gives_the_float64_gradient(monkeypatch, fused, name, p):
    """A tiny ``dp_pow`` and model values down to float32's smallest normal
    number (the domain's edge): the unscaled ``I^(p-1)`` overflows float32,
    the gradient does not."""
    if not fused:
        monkeypatch.setattr(_fast, "kernels", lambda arrays: None)
    arrays = _inputs((64, 32, 32), "float32", weighted=False)
    arrays["model_dp"][0, 0, :4] = [np.finfo(np.float32).smallest_normal, 1e-37, 1e-30, 1e-20]
    loss = pl.get(name, dp_pow=p)
    g = loss.grad(**arrays)
    g64 = loss.grad(**{k: v.astype(np.float64) for k, v in arrays.items()})
    finite = np.abs(g64) <= np.finfo(np.float32).max
    assert finite[0, 0, :4].all()
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, g64, rtol=1e-3, atol=1e-6 * np.max(np.abs(g64)))


@pytest.mark.parametrize("name", ["loss_single", "loss_poissn"])
def test_unscaled_gradient_beyond_float32_falls_back_to_the_scale_first_pass(name):
    """For a general power pass 1 writes the unscaled gradient; with a heavy
    ``dp_weight`` and a model at float32's smallest normal number it
    overflows, pass 1 says so, and pass 2 computes every element with the
    small scale first: the float64 gradient, rounded."""
    from ptyloss_xp.ptycho import _kernels_numba

    arrays = _inputs((16, 8, 8), "float32", weighted=False)
    arrays["model_dp"][0, 0, :2] = [np.finfo(np.float32).smallest_normal, 1e-37]
    arrays["dp_weight"] = np.full((8, 8), 1e4, np.float32)
    loss = pl.get(name, dp_pow=0.01)
    direction = _kernels_numba.pointwise_sums(
        loss.kind, arrays["model_dp"], arrays["measured_dp"], arrays["dp_weight"], 0.01, 0.0,
        0.0, 0.0, out=np.empty_like(arrays["model_dp"]))[4]
    assert not direction
    g = loss.grad(**arrays)
    g64 = loss.grad(**{k: v.astype(np.float64) for k, v in arrays.items()})
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, g64, rtol=1e-3, atol=1e-6 * np.max(np.abs(g64)))


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "generic"])
def test_poissn_without_eps_is_stable_or_refused_by_name(monkeypatch, fused):
    """``eps = 0``: ``D / I`` alone overflows float32 at the smallest normal
    ``I``; the gradient is formed as ``c D / I - c`` with the small ``c``
    first, so it is finite (``c D <= 1``); subnormal model values are
    outside the declared domain."""
    if not fused:
        monkeypatch.setattr(_fast, "kernels", lambda arrays: None)
    arrays = _inputs((256, 64, 64), "float32", weighted=False)
    arrays["measured_dp"][0, 0, :2] = 1.0
    arrays["model_dp"][0, 0, :2] = [1e-30, np.finfo(np.float32).smallest_normal]
    loss = pl.get("loss_poissn", eps=0.0)
    g = loss.grad(**arrays)
    g64 = loss.grad(**{k: v.astype(np.float64) for k, v in arrays.items()})
    np.testing.assert_allclose(g, g64, rtol=1e-4, atol=1e-6 * np.max(np.abs(g64)))
    arrays["model_dp"][0, 0, 1] = 1e-45
    with pytest.raises(ValueError, match="loss_poissn: argument 'model_dp' must be .* normal"):
        loss.grad(**arrays)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "generic"])
def test_a_result_beyond_float32_is_refused_by_name(monkeypatch, fused):
    """Inputs each inside its domain whose exact gradient is beyond float32
    (``p = 0.5``: ``I^(-1/2) / mean(D^(1/2))`` = 1e41): a ValueError naming
    the arguments, not inf; with value checks off, IEEE overflow."""
    if not fused:
        monkeypatch.setattr(_fast, "kernels", lambda arrays: None)
    model = np.full((1, 1, 1), np.finfo(np.float32).smallest_normal, np.float32)
    meas = np.full((1, 1, 1), 1e-45, np.float32)
    loss = pl.get("loss_poissn", dp_pow=0.5)
    with pytest.raises(ValueError, match="loss_poissn: the value or gradient .*'model_dp'"):
        loss.grad(model, meas)
    with pl.check_values(False), np.errstate(over="ignore", invalid="ignore"):
        assert not np.all(np.isfinite(loss.grad(model, meas)))


def test_calls_from_several_threads_under_the_workqueue_layer():
    """numba's workqueue layer aborts the process on concurrent calls of
    parallel kernels (a threaded solver); every entry point is serialised."""
    code = """
import numpy as np, numba, ptyloss_xp as pl
from concurrent.futures import ThreadPoolExecutor
rng = np.random.default_rng(0)
I = rng.uniform(0.1, 2.0, (8, 32, 32)); D = rng.poisson(2.0, I.shape).astype(float)
O = rng.normal(size=(8, 2, 1, 32, 32)); occ = np.array([0.7, 0.3])
calls = [(pl.get("loss_single"), (I, D)), (pl.get("loss_poissn"), (I, D)),
         (pl.get("loss_pacbed"), (I, D)), (pl.get("loss_tv"), (O, occ)),
         (pl.get("loss_sparse"), (O, occ))]
ref = [loss.value_and_grad(*a) for loss, a in calls]
with ThreadPoolExecutor(4) as pool:
    out = list(pool.map(lambda i: calls[i % 5][0].value_and_grad(*calls[i % 5][1]), range(40)))
assert all(v == ref[i % 5][0] and np.array_equal(g, ref[i % 5][1]) for i, (v, g) in enumerate(out))
print(numba.threading_layer())
"""
    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["workqueue"]
