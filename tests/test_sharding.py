"""Scan positions split into shards, by hand (the MPI layout) and as Dask chunks.

- The three phases (partial_sums, combine, finish) over 1, 2 and 5 uneven
  shards give the unsharded value and the unsharded gradient, piece by piece.
- On Dask, value_and_grad reads each input chunk at most twice and its peak
  memory is the persisted gradient plus a few chunks, both where each chunk
  runs the fused kernels (NumPy chunks, ``shards.chunked_*``) and where the
  generic kernels run on the Dask arrays (any other chunks).
- On a two-worker dask.distributed LocalCluster the gradient stays on the
  workers and matches NumPy; bad input raises the library's error there.
"""

import threading
import tracemalloc

import numpy as np
import pytest

import ptyloss_xp as pl
from ptyloss_xp._validate import value_checks_enabled
from ptyloss_xp.ptycho import _fast
from ptyloss_xp.testing import sample_inputs

from conftest import BACKENDS, backend_params, to_numpy

N = 7
BOUNDS = {1: (0, 7), 2: (0, 3, 7), 5: (0, 1, 2, 3, 5, 7)}
TERMS = [name for name in pl.available("ptycho")]
CASES = [
    pytest.param(name, case, id=f"{name}-{i}")
    for name in TERMS
    for i, case in enumerate(({},) + pl.loss_class(name).param_cases)
]
ALL_ON = {
    "loss_single": {"state": True, "dp_pow": 0.5},
    "loss_poissn": {"state": True, "weight": 0.5},
    "loss_pacbed": {"state": True},
    "loss_sparse": {"state": True, "ln_order": 2},
    "loss_simlar": {"state": True, "scale_factor": [1, 0.5, 0.5]},
    "loss_tv": {"state": True, "obj_type": "both"},
}

# The data terms and loss_sparse.
LIGHT = {k: v for k, v in ALL_ON.items() if k not in ("loss_simlar", "loss_tv")}


def _shards(arrays, n_shards, per_position):
    """Contiguous uneven shards; arrays not indexed by scan position stay whole."""
    b = BOUNDS[n_shards]
    return [{k: v[lo:hi, ...] if k in per_position else v for k, v in arrays.items()}
            for lo, hi in zip(b[:-1], b[1:])]


def _per_position(losses):
    return {a.name for loss in losses for a in loss.args if a.shape[:1] == ("N",)}


def _combined_inputs(seed=0, n=N, k=6):
    rng = np.random.default_rng(seed)
    return {
        "model_dp": rng.uniform(0.5, 2.0, (n, k, k)),
        "measured_dp": rng.poisson(1.5, (n, k, k)).astype(float),
        "obja_patches": rng.uniform(0.8, 1.2, (n, 2, 2, 5, 5)),
        "objp_patches": rng.normal(0.0, 0.3, (n, 2, 2, 5, 5)),
        "omode_occu": np.array([0.7, 0.3]),
        "dp_weight": rng.uniform(0.0, 1.0, (k, k)),
    }


def _close(a, b, rtol=1e-10):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.max(np.abs(b)))


@pytest.mark.parametrize("n_shards", [1, 2, 5])
@pytest.mark.parametrize(("name", "case"), CASES)
def test_term_shards_give_the_unsharded_value_and_gradient(name, case, n_shards):
    loss = pl.get(name, **case)
    arrays = sample_inputs(loss, seed=3, sizes={"N": N})
    shards = _shards(arrays, n_shards, _per_position([loss]))
    sums = loss.combine(*(loss.partial_sums(**s) for s in shards))
    parts = [loss.finish(sums, **s) for s in shards]
    v0, g0 = loss.value_and_grad(**arrays)
    for v, _ in parts:
        _close(v, v0, rtol=1e-12)
    g0 = (g0,) if len(loss.wrt) == 1 else g0
    for i, ref in enumerate(g0):
        got = [(g,) if len(loss.wrt) == 1 else g for _, g in parts]
        _close(np.concatenate([g[i] for g in got]), ref)


@pytest.mark.parametrize("n_shards", [1, 2, 5])
def test_combined_shards_give_the_unsharded_total_terms_and_gradients(n_shards):
    combo = pl.CombinedLoss(ALL_ON)
    arrays = _combined_inputs()
    shards = _shards(arrays, n_shards, _per_position(combo.losses.values()))
    sums = combo.combine(*(combo.partial_sums(**s) for s in shards))
    parts = [combo.finish(sums, **s) for s in shards]
    whole = combo.value_and_grad(**arrays)
    for p in parts:
        _close(p.total, whole.total, rtol=1e-12)
        for t, v in whole.terms.items():
            _close(p.terms[t], v, rtol=1e-12)
    assert sorted(whole.grads) == sorted(parts[0].grads)
    for name, g in whole.grads.items():
        _close(np.concatenate([p.grads[name] for p in parts]), g)


@pytest.mark.parametrize("backend", backend_params())
def test_combined_shards_on_every_namespace_give_numpys_numbers(backend):
    xp = BACKENDS[backend]
    # The one-call API already runs loss_simlar's and loss_tv's phases on
    # every namespace (tests/test_contract.py); they are slow to trace in JAX.
    combo = pl.CombinedLoss(LIGHT)
    arrays = _combined_inputs()
    shards = _shards({k: xp.asarray(v) for k, v in arrays.items()}, 2,
                     _per_position(combo.losses.values()))
    sums = combo.combine(*(combo.partial_sums(**s) for s in shards))
    parts = [combo.finish(sums, **s) for s in shards]
    whole = combo.value_and_grad(**arrays)
    _close(to_numpy(parts[1].total), whole.total, rtol=1e-12)
    for name, g in whole.grads.items():
        _close(np.concatenate([to_numpy(p.grads[name]) for p in parts]), g)


def test_float32_shards_stay_float32():
    combo = pl.CombinedLoss(ALL_ON)
    arrays = {k: v.astype(np.float32) for k, v in _combined_inputs().items()}
    shards = _shards(arrays, 2, _per_position(combo.losses.values()))
    sums = combo.combine(*(combo.partial_sums(**s) for s in shards))
    res = combo.finish(sums, **shards[1])
    assert res.total.dtype == np.float32 and res.total.shape == ()
    assert all(g.dtype == np.float32 for g in res.grads.values())
    whole = combo.value_and_grad(**arrays)
    np.testing.assert_allclose(res.total, whole.total, rtol=1e-5)


def test_combined_total_is_a_0d_array_of_the_inputs_namespace():
    res = pl.CombinedLoss().value_and_grad(**{k: v for k, v in _combined_inputs().items()
                                              if k != "obja_patches"})
    assert type(res.total) is np.ndarray and res.total.shape == ()


def test_combined_namespace_errors_name_combinedloss():
    I = np.ones((2, 3, 3))
    with pytest.raises(TypeError, match=r"^CombinedLoss: argument 'measured_dp' must be an array"):
        pl.CombinedLoss().value_and_grad(model_dp=I, measured_dp=I.tolist())


def test_a_shard_may_be_all_zero_but_the_whole_dataset_may_not():
    loss = pl.get("loss_single")
    I, D = np.full((4, 3, 3), 2.0), np.zeros((4, 3, 3))
    D[2:] = 1.0
    sums = loss.combine(loss.partial_sums(I[:2], D[:2]), loss.partial_sums(I[2:], D[2:]))
    v, _ = loss.finish(sums, I[:2], D[:2])
    assert np.isclose(v, loss.value(I, D))
    zero = loss.partial_sums(I[:2], D[:2])
    with pytest.raises(ValueError, match=r"^loss_single: argument 'measured_dp' must not be all zero"):
        loss.finish(loss.combine(zero, zero), I[:2], D[:2])


def test_bad_values_in_a_shard_are_named_in_phase_1():
    loss = pl.get("loss_poissn")
    I, D = np.full((2, 3, 3), 2.0), np.ones((2, 3, 3))
    D[1, 0, 0] = -1.0
    with pytest.raises(ValueError, match=r"^loss_poissn: argument 'measured_dp' must be finite and >= 0"):
        loss.partial_sums(I, D)


def test_combine_refuses_partial_sums_of_different_terms():
    I, D = np.full((2, 3, 3), 2.0), np.ones((2, 3, 3))
    single, pacbed = pl.get("loss_single"), pl.get("loss_pacbed")
    with pytest.raises(ValueError, match="partial sums of different losses"):
        single.combine(single.partial_sums(I, D), pacbed.partial_sums(I, D))
    with pytest.raises(TypeError, match="at least one shard"):
        single.combine()


# ---------------------------------------------------------------- Dask

@pytest.fixture(params=["fused", "generic"])
def chunk_kernels(request, monkeypatch):
    """Each Dask test runs twice: the fused kernels on each NumPy chunk, and
    the generic kernels on the Dask arrays (what CuPy chunks, or an install
    without numba, get)."""
    if request.param == "generic":
        monkeypatch.setattr(_fast, "chunk_kernels", lambda arrays: None)
    return request.param


class Generated:
    """Lazily generated patterns (model > 0, measured >= 0) that count their chunk reads."""

    def __init__(self, n, k, rows):
        self.reads = 0
        self._lock = threading.Lock()
        self.nbytes = n * k * k * 8
        self.chunks = ((rows,) * (n // rows), (k,), (k,))

    def _make(self, seed, low, block_info=None):
        with self._lock:
            self.reads += 1
        info = block_info[None]
        rng = np.random.default_rng([seed, info["chunk-location"][0]])
        return rng.uniform(low, 2.0, info["chunk-shape"])

    def arrays(self):
        da = pytest.importorskip("dask.array")
        meta = np.empty((0, 0, 0))
        return [da.map_blocks(self._make, seed, low, chunks=self.chunks, dtype=float, meta=meta)
                for seed, low in ((1, 0.5), (2, 0.0))]


def test_dask_value_and_grad_reads_each_chunk_twice_and_peaks_near_the_gradient(chunk_kernels):
    dask = pytest.importorskip("dask")
    gen = Generated(100, 128, 5)
    I, D = gen.arrays()
    loss = pl.get("loss_single")
    n_chunks = 2 * len(gen.chunks[0])
    with dask.config.set(scheduler="sync"):
        dask.compute(loss.value_and_grad(I[:10], D[:10]))  # imports and caches, not measured
        v, g = loss.value_and_grad(I, D)
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            gen.reads = 0
            v, g = dask.persist(v, g)
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
        assert gen.reads == 2 * n_chunks
        # The persisted gradient is one input's size; the rest is a few chunks
        # (about 5 here; holding the inputs for phase 2 instead, as commit
        # 1c2d3a5 did, costs 2.2 inputs).
        chunk = gen.nbytes // len(gen.chunks[0])
        assert peak < gen.nbytes + 8 * chunk, (peak / gen.nbytes, peak / chunk)
        gen.reads = 0
        v_only = loss.value(I, D).compute()
        assert gen.reads == n_chunks
        I0, D0 = dask.compute(I, D)
    v0, g0 = loss.value_and_grad(I0, D0)
    _close(v.compute(), v0, rtol=1e-12)
    _close(v_only, v0, rtol=1e-12)
    _close(g.compute(), g0)


def test_persisted_dask_inputs_are_not_recomputed_by_the_second_phase(chunk_kernels):
    dask = pytest.importorskip("dask")
    gen = Generated(40, 8, 10)
    with dask.config.set(scheduler="sync"):
        I, D = dask.persist(*gen.arrays())
        gen.reads = 0
        res = pl.CombinedLoss({"loss_single": {"state": True}}).value_and_grad(model_dp=I, measured_dp=D)
        dask.compute(res.total, res.grads)
    assert gen.reads == 0


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as c:
        yield c


def _dask_chunked(arrays, per_position, rows):
    da = pytest.importorskip("dask.array")
    return {k: da.from_array(v, chunks=(rows,) + v.shape[1:]) if k in per_position
            else da.from_array(v) for k, v in arrays.items()}


def test_every_term_on_dask_chunks_gives_numpys_numbers(chunk_kernels):
    dask = pytest.importorskip("dask")
    combo = pl.CombinedLoss(ALL_ON)
    arrays = _combined_inputs(n=6)
    lazy = _dask_chunked(arrays, _per_position(combo.losses.values()), rows=2)
    res = combo.value_and_grad(**lazy)
    total, grads = dask.compute(res.total, res.grads, scheduler="sync")
    whole = combo.value_and_grad(**arrays)
    _close(total, whole.total, rtol=1e-12)
    for name, g in whole.grads.items():
        _close(grads[name], g)


def test_dask_chunks_of_any_layout_and_mixed_inputs_give_numpys_numbers(chunk_kernels):
    """Trailing axes in several chunks, per-position arrays chunked
    differently along N, float32."""
    dask = pytest.importorskip("dask")
    da = pytest.importorskip("dask.array")
    combo = pl.CombinedLoss(ALL_ON)
    arrays = {k: v.astype(np.float32) for k, v in _combined_inputs(n=7).items()}
    lazy = {
        "model_dp": da.from_array(arrays["model_dp"], chunks=(3, 4, 2)),
        "measured_dp": da.from_array(arrays["measured_dp"], chunks=(2, 6, 6)),
        "obja_patches": da.from_array(arrays["obja_patches"], chunks=(7, 2, 1, 5, 5)),
        "objp_patches": da.from_array(arrays["objp_patches"], chunks=(4, 1, 2, 5, 3)),
        "omode_occu": da.from_array(arrays["omode_occu"]),
        "dp_weight": da.from_array(arrays["dp_weight"], chunks=3),
    }
    res = combo.value_and_grad(**lazy)
    total, grads = dask.compute(res.total, res.grads, scheduler="sync")
    whole = combo.value_and_grad(**arrays)
    assert total.dtype == np.float32
    np.testing.assert_allclose(total, whole.total, rtol=1e-5)
    for name, g in whole.grads.items():
        # The generic kernels' gradients are chunked as Dask's broadcasting
        # of their inputs makes them.
        assert res.grads[name].chunks == lazy[name].chunks or chunk_kernels == "generic"
        assert grads[name].dtype == np.float32
        np.testing.assert_allclose(grads[name], g, rtol=1e-4, atol=1e-5 * np.max(np.abs(g)))


def test_dask_chunks_skip_empty_chunks_and_give_one_graph_for_one_call():
    dask = pytest.importorskip("dask")
    da = pytest.importorskip("dask.array")
    arrays = _combined_inputs(n=7)
    I, D = arrays["model_dp"], arrays["measured_dp"]
    chunks = ((3, 0, 4), (6,), (6,))
    lazy = [da.from_array(x, chunks=chunks) for x in (I, D)]
    loss = pl.get("loss_single")
    v, g = loss.value_and_grad(*lazy)
    assert g.chunks == chunks
    v0, g0 = loss.value_and_grad(I, D)
    _close(v.compute(), v0, rtol=1e-12)
    _close(g.compute(), g0)
    # The same call twice is the same graph (keys from the arguments; the
    # re-read of phase 3 is a fresh clone each time).
    assert loss.value(*lazy).name == loss.value(*lazy).name


def test_two_worker_cluster_keeps_the_gradient_on_the_workers_and_matches_numpy(client, chunk_kernels):
    distributed = pytest.importorskip("dask.distributed")
    # simlar's and tv's graphs are ten times larger and add only scheduling time here.
    combo = pl.CombinedLoss(LIGHT)
    arrays = _combined_inputs(n=12)
    # Twelve chunks: where the scheduler puts a task is its own choice, and
    # with four it put every gradient chunk on one worker in about one run
    # of ten.
    lazy = _dask_chunked(arrays, _per_position(combo.losses.values()), rows=1)
    res = combo.value_and_grad(**lazy)
    names = list(res.grads)
    total, *persisted = client.persist([res.total] + [res.grads[k] for k in names])
    grads = dict(zip(names, persisted))
    distributed.wait(persisted)
    holders = {w for addrs in client.who_has(grads["model_dp"]).values() for w in addrs}
    assert len(holders) == 2
    whole = combo.value_and_grad(**arrays)
    _close(total.compute(), whole.total, rtol=1e-12)
    terms = client.compute(res.terms, sync=True)
    for t, v in whole.terms.items():
        _close(terms[t], v, rtol=1e-12)
    assert sorted(names) == sorted(whole.grads)
    for name, g in whole.grads.items():
        assert grads[name].chunks[0] == lazy[name].chunks[0]
        _close(grads[name].compute(), g)


def test_bad_input_on_the_cluster_raises_the_librarys_error_when_computed(client, chunk_kernels):
    combo = pl.CombinedLoss({"loss_single": {"state": True}})
    arrays = _combined_inputs(n=6)
    arrays["measured_dp"][4, 1, 1] = np.nan
    lazy = _dask_chunked(arrays, {"model_dp", "measured_dp"}, rows=2)
    res = combo.value_and_grad(model_dp=lazy["model_dp"], measured_dp=lazy["measured_dp"])
    grad = client.persist(res.grads["model_dp"])
    # A chunk's task names the chunk; a deferred check of the whole array
    # cannot say where.
    where = (r"; 1 element\(s\) are not, e\.g\. nan \(checked when the Dask result was computed, "
             r"by the task of scan positions 4 to 5\)$" if chunk_kernels == "fused"
             else r" \(checked when the Dask result was computed\)$")
    with pytest.raises(ValueError, match=r"^loss_single: argument 'measured_dp' must be finite and >= 0" + where):
        grad.compute()


def test_check_values_switches_the_checks_of_its_own_thread_only():
    inside, release, seen = threading.Event(), threading.Event(), []

    def switched_off():
        with pl.check_values(False):
            inside.set()
            release.wait(10)
            seen.append(("off thread", value_checks_enabled()))

    t = threading.Thread(target=switched_off)
    t.start()
    inside.wait(10)
    seen.append(("main", value_checks_enabled()))
    with pytest.raises(ValueError, match="must be finite and >= 0"):
        pl.get("loss_single").value(np.ones((1, 2, 2)), -np.ones((1, 2, 2)))
    release.set()
    t.join(10)
    assert seen == [("main", True), ("off thread", False)]


def test_dask_chunks_run_with_the_checks_the_graph_was_built_with(chunk_kernels):
    dask = pytest.importorskip("dask")
    arrays = _combined_inputs(n=6)
    arrays["measured_dp"][4, 1, 1] = -1.0
    lazy = _dask_chunked(arrays, {"model_dp", "measured_dp"}, rows=2)
    loss = pl.get("loss_single")
    with pl.check_values(False):
        unchecked = loss.value_and_grad(lazy["model_dp"], lazy["measured_dp"])
    checked = loss.value_and_grad(lazy["model_dp"], lazy["measured_dp"])
    with np.errstate(invalid="ignore"):
        v, _ = dask.compute(*unchecked, scheduler="sync")
        assert np.isnan(v)
        with pl.check_values(False), pytest.raises(ValueError, match="checked when the Dask result"):
            dask.compute(*checked, scheduler="sync")


def test_scaling_benchmark_runs_at_a_tiny_size(monkeypatch, capsys):
    pytest.importorskip("dask.distributed")
    import runpy
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "scaling.py"
    monkeypatch.syspath_prepend(str(script.parent))  # as `python benchmarks/scaling.py` has it
    monkeypatch.setattr(sys, "argv", [str(script), "--patterns", "32", "--size", "16",
                                      "--rows", "8", "--workers", "1"])
    runpy.run_path(str(script), run_name="__main__")
    rows = [line.split("|") for line in capsys.readouterr().out.splitlines()
            if line.startswith("| 1 |")]
    assert len(rows) == 1 and rows[0][5].strip() == "2.00"  # every input byte read twice
